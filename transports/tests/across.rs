//! The standard filters across nodes, over TCP: re-entrant mutual
//! exclusion along a callback cycle, transactions with two-phase commit
//! and presumed abort, access control by the principal a Hello proved,
//! and the capability rule.
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether::filters::access::Who;
use tether::filters::transaction::{TxCell, active_transactions};
use tether::filters::{AccessLayer, MutexLayer, TransactionLayer};
use tether::transports::frame::Credentials;
use tether::transports::session::Answer;
use tether::transports::{Config, Listener, Peer, tcp};
use tether::{ErrorKind, Exposed, Node, Object, Principal, Value};
use tokio::sync::Semaphore;

use support::{Raw, bounded, eventually};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, tether::Schema)]
pub enum BankError {
    Insufficient { balance: i64 },
    Injected,
    Tether(String),
}

impl From<tether::Error<BankError>> for BankError {
    fn from(e: tether::Error<BankError>) -> Self {
        match e.callee() {
            Some(b) => b.clone(),
            None => BankError::Tether(e.to_string()),
        }
    }
}

#[tether::interface]
pub trait Account {
    async fn balance(&self) -> i64;
    async fn deposit(&self, amount: i64) -> Result<i64, BankError>;
    async fn withdraw(&self, amount: i64) -> Result<i64, BankError>;
}

#[tether::interface]
pub trait Journal {
    async fn record(&self) -> Result<u64, BankError>;
}

#[tether::interface]
pub trait Bank {
    /// Moves `amount`, records it in the journal if there is one, then
    /// fails if `fail` is 1 or waits at the gate if 3.
    async fn transfer(
        &self,
        from: String,
        to: String,
        amount: i64,
        fail: u8,
    ) -> Result<(), BankError>;
}

fn tether_error(e: tether::Error) -> BankError {
    BankError::Tether(e.to_string())
}

struct Vault {
    balance: TxCell<i64>,
}

impl Account for Vault {
    async fn balance(&self) -> i64 {
        self.balance.get().await.unwrap_or(-1)
    }
    async fn deposit(&self, amount: i64) -> Result<i64, BankError> {
        self.balance
            .update(|b| {
                *b += amount;
                *b
            })
            .await
            .map_err(tether_error)
    }
    async fn withdraw(&self, amount: i64) -> Result<i64, BankError> {
        let balance = self.balance.get().await.map_err(tether_error)?;
        if balance < amount {
            return Err(BankError::Insufficient { balance });
        }
        self.balance
            .set(balance - amount)
            .await
            .map_err(tether_error)?;
        Ok(balance - amount)
    }
}

struct Log {
    entries: TxCell<u64>,
}

impl Journal for Log {
    async fn record(&self) -> Result<u64, BankError> {
        self.entries
            .update(|n| {
                *n += 1;
                *n
            })
            .await
            .map_err(tether_error)
    }
}

struct Teller {
    accounts: RwLock<HashMap<String, AccountClient>>,
    journal: RwLock<Option<JournalClient>>,
    gate: Semaphore,
}

impl Default for Teller {
    fn default() -> Self {
        Teller {
            accounts: RwLock::default(),
            journal: RwLock::default(),
            gate: Semaphore::new(0),
        }
    }
}

impl Bank for Teller {
    async fn transfer(
        &self,
        from: String,
        to: String,
        amount: i64,
        fail: u8,
    ) -> Result<(), BankError> {
        let (from, to) = {
            let accounts = self.accounts.read().unwrap();
            let find = |name: &str| {
                accounts
                    .get(name)
                    .cloned()
                    .ok_or_else(|| BankError::Tether(format!("no account {name}")))
            };
            (find(&from)?, find(&to)?)
        };
        from.withdraw(amount).await?;
        to.deposit(amount).await?;
        let journal = self.journal.read().unwrap().clone();
        if let Some(journal) = journal {
            journal.record().await?;
        }
        match fail {
            1 => Err(BankError::Injected),
            3 => {
                self.gate.acquire().await.unwrap().forget();
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

type Vaults = Vec<Exposed<Object<Vault>>>;

/// Accounts `{prefix}0..` on `node`, whose calls join the caller's
/// transaction.
fn vaults(node: &Node, prefix: &str, balances: &[i64], lock_timeout: Duration) -> Vaults {
    balances
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let v = node
                .expose(Vault {
                    balance: TxCell::with_lock_timeout(b, lock_timeout),
                })
                .with_view(
                    "v",
                    AccountInterface::view().layer(TransactionLayer::join()),
                )
                .unwrap();
            node.publish(format!("{prefix}{i}"), v.view("v").unwrap());
            v
        })
        .collect()
}

fn committed(vaults: &Vaults) -> Vec<i64> {
    vaults
        .iter()
        .map(|v| v.object().balance.committed())
        .collect()
}

fn unlocked(vaults: &Vaults) -> bool {
    vaults.iter().all(|v| v.object().balance.holder().is_none())
}

/// Two nodes over TCP: A has the teller (every transfer a transaction it
/// coordinates) and accounts `a0..`; B has accounts `b0..`.
struct Bank2 {
    a: Node,
    b: Node,
    a_vaults: Vaults,
    b_vaults: Vaults,
    b_listener: Listener,
    a_to_b: Peer,
    teller: Exposed<Object<Teller>>,
    bank: BankClient,
}

async fn bank2(a: &[i64], b: &[i64], lock_timeout: Duration, b_config: Config) -> Bank2 {
    let (na, nb) = (Node::new(), Node::new());
    let a_vaults = vaults(&na, "a", a, lock_timeout);
    let b_vaults = vaults(&nb, "b", b, lock_timeout);
    let b_listener = tcp::serve(&nb, "127.0.0.1:0", b_config).await.unwrap();
    let a_to_b = tcp::connect(&na, b_listener.local_addr(), Config::new())
        .await
        .unwrap();
    let teller = na
        .expose(Teller::default())
        .with_view("v", BankInterface::view().layer(TransactionLayer::create()))
        .unwrap();
    let bank = teller.client("v").unwrap();
    let world = Bank2 {
        a: na,
        b: nb,
        a_vaults,
        b_vaults,
        b_listener,
        a_to_b,
        teller,
        bank,
    };
    for i in 0..a.len() {
        let name = format!("a{i}");
        let client = world.a.lookup::<AccountClient>(&name).unwrap();
        world.teller_accounts().insert(name, client);
    }
    world.link_b(&world.a_to_b).await;
    world
}

impl Bank2 {
    fn teller_accounts(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, AccountClient>> {
        self.teller.object().accounts.write().unwrap()
    }
    /// Points the teller's `b…` accounts at B through `peer`.
    async fn link_b(&self, peer: &Peer) {
        for i in 0..self.b_vaults.len() {
            let name = format!("b{i}");
            let client = peer.lookup::<AccountClient>(&name).await.unwrap();
            self.teller_accounts().insert(name, client);
        }
    }
    fn total(&self) -> i64 {
        committed(&self.a_vaults).iter().sum::<i64>()
            + committed(&self.b_vaults).iter().sum::<i64>()
    }
    fn unlocked(&self) -> bool {
        unlocked(&self.a_vaults) && unlocked(&self.b_vaults)
    }
    async fn stop(self) {
        self.a_to_b.close().await;
        self.b_listener.close().await;
        drop((self.a, self.b));
    }
}

/// The tests take turns: they check the process-wide count of transaction
/// branches, which a test running beside them would change.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn no_transactions_left() {
    eventually("every transaction branch ends", || {
        active_transactions() == 0
    })
    .await;
}

#[tokio::test]
async fn a_transfer_across_two_nodes_commits_on_both() {
    let _serial = SERIAL.lock().await;
    bounded(async {
        let w = bank2(&[100], &[0], Duration::from_secs(5), Config::new()).await;
        w.bank
            .transfer("a0".into(), "b0".into(), 30, 0)
            .await
            .unwrap();
        w.bank
            .transfer("b0".into(), "a0".into(), 5, 0)
            .await
            .unwrap();
        assert_eq!(committed(&w.a_vaults), [75]);
        assert_eq!(committed(&w.b_vaults), [25]);
        assert!(w.unlocked());
        no_transactions_left().await;
        // Every transfer's branch at B has ended: nothing is left in doubt.
        assert_eq!(w.a_to_b.tables().questions, 0);
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_failure_anywhere_rolls_back_both_nodes() {
    let _serial = SERIAL.lock().await;
    bounded(async {
        let w = bank2(&[100], &[10], Duration::from_secs(5), Config::new()).await;
        // The teller fails after both legs ran.
        let e = w
            .bank
            .transfer("a0".into(), "b0".into(), 30, 1)
            .await
            .unwrap_err();
        assert_eq!(e.callee(), Some(&BankError::Injected));
        // The remote leg refuses after the local leg ran.
        let e = w
            .bank
            .transfer("b0".into(), "a0".into(), 50, 0)
            .await
            .unwrap_err();
        assert_eq!(e.callee(), Some(&BankError::Insufficient { balance: 10 }));
        let e = w
            .bank
            .transfer("a0".into(), "b0".into(), 500, 0)
            .await
            .unwrap_err();
        assert_eq!(e.callee(), Some(&BankError::Insufficient { balance: 100 }));
        assert_eq!(
            (committed(&w.a_vaults), committed(&w.b_vaults)),
            (vec![100], vec![10])
        );
        assert!(w.unlocked());
        no_transactions_left().await;
        w.stop().await;
    })
    .await;
}

/// Starts a transfer `a0 → b0` that waits at the teller's gate once both
/// legs ran, and waits until B's account is held by it.
async fn transfer_held_at_the_gate(
    w: &Bank2,
) -> tokio::task::JoinHandle<Result<(), tether::Error<BankError>>> {
    let bank = w.bank.clone();
    let transfer =
        tokio::spawn(async move { bank.transfer("a0".into(), "b0".into(), 30, 3).await });
    let b0 = w.b_vaults[0].object();
    eventually("B's account is held by the transfer", || {
        b0.balance.holder().is_some()
    })
    .await;
    transfer
}

#[tokio::test]
async fn when_the_coordinator_disappears_the_branch_aborts_and_unlocks() {
    let _serial = SERIAL.lock().await;
    bounded(async {
        let w = bank2(&[100], &[0], Duration::from_secs(5), Config::new()).await;
        let transfer = transfer_held_at_the_gate(&w).await;
        // B loses the connection from A, as if A's host had vanished.
        let at_b = w.b_listener.peers();
        assert_eq!(at_b.len(), 1);
        at_b[0].abort();
        let b0 = w.b_vaults[0].object();
        eventually("B's branch aborts", || b0.balance.holder().is_none()).await;
        assert_eq!(committed(&w.b_vaults), [0], "the tentative deposit is gone");
        // A's transfer then cannot reach B to prepare: it aborts too.
        w.teller.object().gate.add_permits(1);
        let e = transfer.await.unwrap().unwrap_err();
        assert!(e.to_string().contains("aborted"), "{e}");
        assert_eq!(committed(&w.a_vaults), [100]);
        assert!(w.unlocked());
        no_transactions_left().await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_branch_that_hears_nothing_in_time_aborts_on_its_own() {
    let _serial = SERIAL.lock().await;
    bounded(async {
        let b_config = Config::new().transaction_timeout(Duration::from_millis(300));
        let w = bank2(&[100], &[0], Duration::from_secs(5), b_config).await;
        let transfer = transfer_held_at_the_gate(&w).await;
        let b0 = w.b_vaults[0].object();
        // The coordinator is alive but slow: B presumes abort.
        eventually("B's branch times out", || b0.balance.holder().is_none()).await;
        assert_eq!(committed(&w.b_vaults), [0]);
        // When A finally prepares, B has no branch and votes no.
        w.teller.object().gate.add_permits(1);
        let e = transfer.await.unwrap().unwrap_err();
        assert!(e.to_string().contains("aborted"), "{e}");
        assert_eq!(committed(&w.a_vaults), [100]);
        assert!(!w.a_to_b.is_closed(), "the connection itself is fine");
        // And the next transfer commits.
        w.bank
            .transfer("a0".into(), "b0".into(), 1, 0)
            .await
            .unwrap();
        assert_eq!(w.total(), 100);
        assert_eq!(committed(&w.b_vaults), [1]);
        no_transactions_left().await;
        w.stop().await;
    })
    .await;
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_transfers_with_injected_failures_keep_the_total() {
    let _serial = SERIAL.lock().await;
    bounded(async {
        let lock_timeout = Duration::from_millis(200);
        let w = bank2(&[100; 4], &[100; 4], lock_timeout, Config::new()).await;
        // A third node keeps the journal every transfer writes to.
        let k = Node::new();
        let log = k
            .expose(Log {
                entries: TxCell::with_lock_timeout(0, lock_timeout),
            })
            .with_view(
                "v",
                JournalInterface::view().layer(TransactionLayer::join()),
            )
            .unwrap();
        k.publish("journal", log.view("v").unwrap());
        // Its branches that were prepared when it "died" (in this process
        // it lives on, cut off) time out soon.
        let k_config = Config::new().transaction_timeout(Duration::from_millis(500));
        let k_listener = tcp::serve(&k, "127.0.0.1:0", k_config).await.unwrap();
        let a_to_k = tcp::connect(&w.a, k_listener.local_addr(), Config::new())
            .await
            .unwrap();
        *w.teller.object().journal.write().unwrap() =
            Some(a_to_k.lookup::<JournalClient>("journal").await.unwrap());

        let names: Vec<String> = (0..4)
            .flat_map(|i| [format!("a{i}"), format!("b{i}")])
            .collect();
        let mut rng = Rng(0x5eed_cafe_f00d);
        let mut a_to_b = w.a_to_b.clone();
        let mut old = Vec::new();
        let ok = AtomicU64::new(0);
        let injected = AtomicU64::new(0);
        let other = AtomicU64::new(0);
        for round in 0..6 {
            // Each round: 25 transfers at once, and one failure of the
            // network or of a node in the middle of it.
            let batch: Vec<_> = (0..25)
                .map(|_| {
                    let from = names[rng.below(8) as usize].clone();
                    let to = names[rng.below(8) as usize].clone();
                    let amount = 1 + rng.below(60) as i64;
                    let fail = u8::from(rng.below(8) == 0);
                    let bank = w.bank.clone();
                    tokio::spawn(async move { bank.transfer(from, to, amount, fail).await })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(2)).await;
            match round {
                // A dropped connection between the two account nodes.
                1 | 4 => a_to_b.abort(),
                // The journal's node dies: its connections drop without a
                // goodbye, and it is gone for good.
                2 => {
                    for peer in k_listener.peers() {
                        peer.abort();
                    }
                    k_listener.close().await;
                }
                _ => {}
            }
            for t in batch {
                match t.await.unwrap() {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) if e.callee() == Some(&BankError::Injected) => {
                        injected.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(_) => other.fetch_add(1, Ordering::Relaxed),
                };
            }
            if a_to_b.is_closed() {
                // Reconnect and carry on with fresh references.
                let fresh = tcp::connect(&w.a, w.b_listener.local_addr(), Config::new())
                    .await
                    .unwrap();
                w.link_b(&fresh).await;
                old.push(std::mem::replace(&mut a_to_b, fresh));
            }
            if round == 2 {
                // Later transfers do without the journal.
                *w.teller.object().journal.write().unwrap() = None;
            }
        }
        let (ok, injected, other) = (
            ok.load(Ordering::Relaxed),
            injected.load(Ordering::Relaxed),
            other.load(Ordering::Relaxed),
        );
        eprintln!(
            "transfers: {ok} committed, {injected} injected failures, {other} other failures"
        );
        assert_eq!(ok + injected + other, 150);
        assert!(
            ok > 0 && injected > 0,
            "ok {ok}, injected {injected}, other {other}"
        );
        no_transactions_left().await;
        assert!(w.unlocked(), "no account stays locked");
        assert_eq!(
            w.total(),
            800,
            "ok {ok}, injected {injected}, other {other}"
        );
        assert!(old.len() == 2 && old.iter().all(Peer::is_closed));
        assert!(a_to_k.is_closed(), "the journal's node is gone");
        a_to_b.close().await;
        w.stop().await;
    })
    .await;
}

#[tether::interface]
pub trait Ring {
    /// Calls `next.around(me, hops - 1)` unless `hops` is 0, when it waits
    /// at the gate; answers how many hops it made.
    async fn around(&self, next: RingClient, hops: u64) -> u64;
    async fn inside(&self) -> u64;
}

struct Station {
    me: OnceLock<RingClient>,
    gate: Semaphore,
    at_gate: AtomicU64,
}

impl Ring for Station {
    async fn around(&self, next: RingClient, hops: u64) -> u64 {
        if hops == 0 {
            self.at_gate.fetch_add(1, Ordering::SeqCst);
            self.gate.acquire().await.unwrap().forget();
            self.at_gate.fetch_sub(1, Ordering::SeqCst);
            return 0;
        }
        let me = self.me.get().unwrap().clone();
        next.around(me, hops - 1).await.unwrap() + 1
    }
    async fn inside(&self) -> u64 {
        1
    }
}

/// A station on `node` whose methods are mutually exclusive.
fn station(node: &Node) -> Exposed<Object<Station>> {
    let s = node
        .expose(Station {
            me: OnceLock::new(),
            gate: Semaphore::new(0),
            at_gate: AtomicU64::new(0),
        })
        .with_view("v", RingInterface::view().layer(MutexLayer::exclusive()))
        .unwrap();
    let _ = s.object().me.set(s.client("v").unwrap());
    node.publish("ring", s.view("v").unwrap());
    s
}

#[tokio::test]
async fn a_callback_cycle_through_exclusive_objects_on_two_nodes_completes() {
    let _serial = SERIAL.lock().await;
    bounded(async {
        let (a, b) = (Node::new(), Node::new());
        let (sa, sb) = (station(&a), station(&b));
        let listener = tcp::serve(&b, "127.0.0.1:0", Config::new()).await.unwrap();
        let a_to_b = tcp::connect(&a, listener.local_addr(), Config::new())
            .await
            .unwrap();
        let b_ring: RingClient = a_to_b.lookup("ring").await.unwrap();
        let a_ring = sa.client::<RingClient>("v").unwrap();
        // A → B → A → B: each station is entered twice by one call chain,
        // the second time while the chain still holds its lock.
        let chain = {
            let a_ring = a_ring.clone();
            tokio::spawn(async move { a_ring.around(b_ring, 3).await })
        };
        // The chain has reached B the second time (it waits at B's gate):
        // it holds both locks. An unrelated caller of A waits for it.
        let unrelated = {
            let a_ring = a_ring.clone();
            tokio::spawn(async move { a_ring.inside().await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!chain.is_finished(), "the chain waits at B's gate");
        assert!(
            !unrelated.is_finished(),
            "an unrelated caller waits for the lock"
        );
        sb.object().gate.add_permits(1);
        assert_eq!(chain.await.unwrap().unwrap(), 3);
        assert_eq!(unrelated.await.unwrap().unwrap(), 1);
        a_to_b.close().await;
        listener.close().await;
    })
    .await;
}

/// Two calls a remote caller starts side by side from one scope share its
/// chain, but neither is nested in the other: the callee's lock lets them
/// in one at a time.
#[tokio::test]
async fn siblings_from_one_remote_scope_take_turns() {
    let _serial = SERIAL.lock().await;
    bounded(async {
        let (a, b) = (Node::new(), Node::new());
        let (sa, sb) = (station(&a), station(&b));
        let listener = tcp::serve(&b, "127.0.0.1:0", Config::new()).await.unwrap();
        let a_to_b = tcp::connect(&a, listener.local_addr(), Config::new())
            .await
            .unwrap();
        let b_ring: RingClient = a_to_b.lookup("ring").await.unwrap();
        let me = sa.client::<RingClient>("v").unwrap();
        let both = tokio::spawn(tether::Context::new().scope(async move {
            let (x, y) = tokio::join!(b_ring.around(me.clone(), 0), b_ring.around(me, 0));
            (x.unwrap(), y.unwrap())
        }));
        eventually("one call reaches B's gate", || {
            sb.object().at_gate.load(Ordering::SeqCst) == 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            sb.object().at_gate.load(Ordering::SeqCst),
            1,
            "the sibling waits for the lock"
        );
        sb.object().gate.add_permits(2);
        assert_eq!(both.await.unwrap(), (0, 0));
        a_to_b.close().await;
        listener.close().await;
    })
    .await;
}

/// Alice (a teller) and Bob (an auditor) prove who they are with a
/// secret; anyone else with credentials is refused; no credentials is
/// anonymous.
fn authenticate(c: Option<&Credentials>) -> Result<Option<Principal>, String> {
    let Some(c) = c else {
        return Ok(None);
    };
    match (c.principal.as_str(), c.secret.as_slice()) {
        ("alice", b"open sesame") => Ok(Some(Principal::new("alice", ["teller"]))),
        ("bob", b"hunter2") => Ok(Some(Principal::new("bob", ["auditor"]))),
        (who, _) => Err(format!("bad credentials for {who}")),
    }
}

#[tokio::test]
async fn access_is_decided_by_the_principal_the_hello_proved() {
    let _serial = SERIAL.lock().await;
    bounded(async {
        let server = Node::new();
        let vault = server
            .expose(Vault {
                balance: TxCell::new(100),
            })
            .with_view(
                "v",
                AccountInterface::view().layer(
                    AccessLayer::allow_role("teller")
                        .allow_methods(Who::Anyone, [AccountInterface::BALANCE]),
                ),
            )
            .unwrap();
        server.publish("acct", vault.view("v").unwrap());
        let config = Config::new().authenticator(authenticate);
        let listener = tcp::serve(&server, "127.0.0.1:0", config).await.unwrap();
        let addr = listener.local_addr();
        let as_ = |credentials: Option<(&str, &str)>| {
            let config = match credentials {
                Some((who, secret)) => Config::new().credentials(who, secret.as_bytes().to_vec()),
                None => Config::new(),
            };
            async move { tcp::connect(&Node::new(), addr, config).await.unwrap() }
        };

        let anonymous = as_(None).await;
        let acct: AccountClient = anonymous.lookup("acct").await.unwrap();
        assert_eq!(acct.balance().await.unwrap(), 100);
        let e = acct.deposit(5).await.unwrap_err();
        assert!(e.is_access_denied(), "{e}");
        let bob = as_(Some(("bob", "hunter2"))).await;
        let e = bob
            .lookup::<AccountClient>("acct")
            .await
            .unwrap()
            .withdraw(50)
            .await
            .unwrap_err();
        assert!(e.is_access_denied() && e.to_string().contains("bob"), "{e}");
        assert_eq!(
            vault.object().balance.committed(),
            100,
            "denied calls had no effect"
        );

        let alice = as_(Some(("alice", "open sesame"))).await;
        let acct: AccountClient = alice.lookup("acct").await.unwrap();
        assert_eq!(acct.deposit(5).await.unwrap(), 105);
        let principals: Vec<_> = listener
            .peers()
            .iter()
            .map(|p| p.principal().map(|p| p.name().to_string()))
            .collect();
        assert!(principals.contains(&Some("alice".into())) && principals.contains(&None));

        // A wrong secret does not open a connection at all.
        let mallory = as_(Some(("alice", "guess"))).await;
        let e = mallory.opened().await.unwrap_err();
        assert!(
            e.is_disconnected() && e.to_string().contains("bad credentials"),
            "{e}"
        );
        for p in [anonymous, bob, alice] {
            p.close().await;
        }
        listener.close().await;
    })
    .await;
}

fn error_kind(answer: Answer) -> ErrorKind {
    match answer {
        Answer::Error(e) => e.kind(),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn guessed_keys_and_forged_transaction_control_reach_nothing() {
    let _serial = SERIAL.lock().await;
    bounded(async {
        let w = bank2(&[100], &[0], Duration::from_secs(5), Config::new()).await;
        // Something B has but never gave anyone.
        let hidden = vaults(&w.b, "hidden", &[1_000_000], Duration::from_secs(5));
        w.b.unpublish("hidden0");
        let transfer = transfer_held_at_the_gate(&w).await;
        let tx = w.b_vaults[0].object().balance.holder().unwrap();

        let mut raw = Raw::connect(w.b_listener.local_addr()).await;
        // Every key but the bootstrap reaches nothing, whatever A's
        // connection has been given.
        let bootstrap = raw.bootstrap;
        for key in (0..64).filter(|k| *k != bootstrap) {
            let answer = raw
                .call(key, "withdraw", Value::serializable((1_i64,)))
                .await;
            assert_eq!(error_kind(answer), ErrorKind::UnknownObject, "key {key}");
        }
        let answer = raw
            .call(
                raw.bootstrap,
                "lookup",
                Value::serializable(("hidden0".to_string(),)),
            )
            .await;
        assert_eq!(error_kind(answer), ErrorKind::UnknownObject);
        // A transaction id learnt or guessed: this connection brought no
        // branch of it, so it can neither vote for it nor end it.
        match raw
            .call(raw.bootstrap, "prepare", Value::serializable((tx.0,)))
            .await
        {
            Answer::Value(_, bytes) => assert!(!postcard::from_bytes::<bool>(&bytes).unwrap()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            raw.call(raw.bootstrap, "abort", Value::serializable((tx.0,)))
                .await,
            Answer::Value(..)
        ));
        assert_eq!(
            w.b_vaults[0].object().balance.holder(),
            Some(tx),
            "untouched"
        );
        assert_eq!(hidden[0].object().balance.committed(), 1_000_000);

        // The real coordinator still commits.
        w.teller.object().gate.add_permits(1);
        transfer.await.unwrap().unwrap();
        assert_eq!(
            (committed(&w.a_vaults), committed(&w.b_vaults)),
            (vec![70], vec![30])
        );
        assert!(
            raw.session.is_open(),
            "the probing peer was answered, not cut off"
        );
        no_transactions_left().await;
        w.stop().await;
    })
    .await;
}
