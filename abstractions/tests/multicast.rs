//! Multicast groups, formed by a caller or exposed by a receiver.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether::abstractions::{Multicast, Oneway, Policy};
use tether::{Error, ErrorKind, Exposed, Node, Object, Ref};
use tokio::sync::{Semaphore, mpsc};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, tether::Schema)]
pub enum StoreError {
    Down(usize),
}

/// Deliberately not `Clone`: a group copies it by a serde round trip.
#[derive(Debug, PartialEq, Serialize, Deserialize, tether::Schema)]
pub struct Blob(Vec<u8>);

#[tether::interface]
pub trait Replica {
    async fn put(&self, key: String, value: u64) -> Result<usize, StoreError>;
    async fn get(&self, key: String) -> Option<u64>;
    async fn load(&self, blob: Blob) -> usize;
    async fn notify(&self, text: String);
}

struct Store {
    id: usize,
    data: Mutex<HashMap<String, u64>>,
    down: AtomicBool,
    /// When set, `put` waits for a permit.
    gate: Option<Semaphore>,
    events: mpsc::UnboundedSender<String>,
}

impl Replica for Store {
    async fn put(&self, key: String, value: u64) -> Result<usize, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Down(self.id));
        }
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        self.data.lock().unwrap().insert(key.clone(), value);
        let _ = self.events.send(format!("{} put {key}", self.id));
        Ok(self.id)
    }
    async fn get(&self, key: String) -> Option<u64> {
        self.data.lock().unwrap().get(&key).copied()
    }
    async fn load(&self, blob: Blob) -> usize {
        blob.0.len() + self.id
    }
    async fn notify(&self, text: String) {
        let _ = self.events.send(format!("{} notified {text}", self.id));
    }
}

struct Cluster {
    node: Node,
    replicas: Vec<Exposed<Object<Store>>>,
    events: mpsc::UnboundedReceiver<String>,
}

impl Cluster {
    fn new(n: usize, gated: Option<usize>) -> Self {
        let node = Node::new();
        let (tx, events) = mpsc::unbounded_channel();
        let replicas = (0..n)
            .map(|id| {
                node.expose(Store {
                    id,
                    data: Mutex::new(HashMap::new()),
                    down: AtomicBool::new(false),
                    gate: (gated == Some(id)).then(|| Semaphore::new(0)),
                    events: tx.clone(),
                })
                .with_view("v", ReplicaInterface::view())
                .unwrap()
            })
            .collect();
        Cluster {
            node,
            replicas,
            events,
        }
    }

    fn refs(&self) -> Vec<Ref> {
        self.replicas.iter().map(|r| r.view("v").unwrap()).collect()
    }

    fn group(&self, policy: Policy) -> Multicast {
        Multicast::new(self.refs(), policy).unwrap()
    }

    fn down(&self, i: usize) {
        self.replicas[i].object().down.store(true, Ordering::SeqCst);
    }

    fn value(&self, i: usize, key: &str) -> Option<u64> {
        self.replicas[i]
            .object()
            .data
            .lock()
            .unwrap()
            .get(key)
            .copied()
    }
}

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("the test waited more than 10 s")
}

#[tokio::test]
async fn each_member_answers_for_itself_in_member_order() {
    let cluster = Cluster::new(3, None);
    cluster.down(1);
    let group = cluster.group(Policy::All);
    let results = group.each(|r: &ReplicaClient| r.put("k".into(), 7)).await;
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().unwrap(), &0);
    let e = results[1].as_ref().unwrap_err();
    assert!(e.is_failed());
    assert_eq!(e.callee(), Some(&StoreError::Down(1)));
    assert_eq!(results[2].as_ref().unwrap(), &2);
    assert_eq!(cluster.value(0, "k"), Some(7));
    assert_eq!(cluster.value(1, "k"), None);
    assert_eq!(cluster.value(2, "k"), Some(7));
}

#[tokio::test]
async fn policy_all_through_a_typed_stub() {
    let cluster = Cluster::new(3, None);
    let all: ReplicaClient = cluster.group(Policy::All).client().unwrap();
    assert_eq!(
        all.put("a".into(), 1).await.unwrap(),
        0,
        "the first member's reply"
    );
    assert!((0..3).all(|i| cluster.value(i, "a") == Some(1)));

    cluster.down(2);
    let e = all.put("b".into(), 2).await.unwrap_err();
    assert!(e.is_failed());
    assert_eq!(
        e.callee(),
        Some(&StoreError::Down(2)),
        "the callee's own error survives"
    );
    assert_eq!(
        cluster.value(0, "b"),
        Some(2),
        "a failing member hides no other"
    );
}

#[tokio::test]
async fn policy_first_needs_one_success() {
    let cluster = Cluster::new(3, None);
    cluster.down(0);
    let first: ReplicaClient = cluster.group(Policy::First).client().unwrap();
    let winner = first.put("k".into(), 3).await.unwrap();
    assert!(winner == 1 || winner == 2, "{winner}");

    cluster.down(1);
    cluster.down(2);
    let e = first.put("k".into(), 4).await.unwrap_err();
    assert!(e.is_failed());
    assert!(
        e.message()
            .contains("put needs 1 of 3 members: 0 succeeded, 3 failed"),
        "{e}"
    );
}

#[tokio::test]
async fn policy_quorum_counts_successes() {
    let cluster = Cluster::new(3, None);
    cluster.down(1);
    let two: ReplicaClient = cluster.group(Policy::Quorum(2)).client().unwrap();
    assert!(two.put("k".into(), 5).await.is_ok());
    let three: ReplicaClient = cluster.group(Policy::Quorum(3)).client().unwrap();
    let e = three.put("k".into(), 6).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed);
    assert!(e.message().starts_with("put needs 3 of 3 members: "), "{e}");
    assert!(e.message().contains("1 failed"), "{e}");
    assert!(e.message().contains("member 1: call failed"), "{e}");
}

#[tokio::test]
async fn a_quorum_answers_while_slow_members_finish_in_the_background() {
    let mut cluster = Cluster::new(3, Some(2));
    let quorum: ReplicaClient = cluster.group(Policy::Quorum(2)).client().unwrap();
    within(quorum.put("k".into(), 9)).await.unwrap();
    assert_eq!(cluster.value(2, "k"), None, "member 2 is still waiting");
    cluster.replicas[2]
        .object()
        .gate
        .as_ref()
        .unwrap()
        .add_permits(1);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(within(cluster.events.recv()).await.unwrap());
    }
    seen.sort();
    assert_eq!(seen, ["0 put k", "1 put k", "2 put k"]);
    assert_eq!(cluster.value(2, "k"), Some(9));
}

#[tokio::test]
async fn a_receiver_exposes_replicas_as_one_object() {
    let cluster = Cluster::new(3, None);
    let replicated = cluster
        .node
        .expose_service(cluster.group(Policy::All))
        .with_view(
            "replicated",
            ReplicaInterface::view().only([ReplicaInterface::PUT, ReplicaInterface::GET]),
        )
        .unwrap();
    cluster
        .node
        .publish("store", replicated.view("replicated").unwrap());

    // A caller sees an ordinary object.
    let store: ReplicaClient = cluster.node.lookup("store").unwrap();
    assert_eq!(store.put("x".into(), 11).await.unwrap(), 0);
    assert_eq!(store.get("x".into()).await.unwrap(), Some(11));
    assert!(
        (0..3).all(|i| cluster.value(i, "x") == Some(11)),
        "every replica was written"
    );
    assert!(
        store
            .load(Blob(vec![]))
            .await
            .unwrap_err()
            .is_unknown_method()
    );
}

#[tokio::test]
async fn arguments_without_clone_are_copied_for_each_member() {
    let cluster = Cluster::new(3, None);
    let group = cluster.group(Policy::All);
    let lens = group
        .each(|r: &ReplicaClient| r.load(Blob(vec![1, 2, 3])))
        .await;
    let lens: Vec<usize> = lens.into_iter().map(Result::unwrap).collect();
    assert_eq!(lens, [3, 4, 5]);
    // Through the group reference one message is copied to every member.
    let one: ReplicaClient = group.client().unwrap();
    assert_eq!(one.load(Blob(vec![0; 10])).await.unwrap(), 10);
}

#[tokio::test]
async fn each_member_keeps_its_own_view() {
    let mut cluster = Cluster::new(2, None);
    // Member 0 makes notify oneway; member 1 leaves it sync.
    cluster.replicas[0]
        .set_view(
            "v",
            ReplicaInterface::view().method(ReplicaInterface::NOTIFY, Oneway),
        )
        .unwrap();
    let group = cluster.group(Policy::All);
    let broadcast = group.client::<ReplicaClient>().unwrap();
    broadcast.notify("hi".into()).await.unwrap();
    let mut seen = vec![
        within(cluster.events.recv()).await.unwrap(),
        within(cluster.events.recv()).await.unwrap(),
    ];
    seen.sort();
    assert_eq!(seen, ["0 notified hi", "1 notified hi"]);
}

#[tether::interface]
pub trait Unrelated {
    async fn ping(&self);
}

struct Pinger;
impl Unrelated for Pinger {
    async fn ping(&self) {}
}

#[tokio::test]
async fn groups_are_checked_when_formed() {
    let cluster = Cluster::new(2, None);
    let e = Multicast::new(Vec::new(), Policy::All).unwrap_err();
    assert!(e.is_bad_arguments(), "{e}");
    for q in [0, 3] {
        let e = Multicast::new(cluster.refs(), Policy::Quorum(q)).unwrap_err();
        assert!(e.is_bad_arguments(), "{e}");
    }
    let odd = cluster
        .node
        .expose(Pinger)
        .with_view("v", UnrelatedInterface::view())
        .unwrap()
        .view("v")
        .unwrap();
    let mut members = cluster.refs();
    members.push(odd);
    let e = Multicast::new(members, Policy::All).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Incompatible);
    let e: Error = cluster
        .group(Policy::All)
        .client::<UnrelatedClient>()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Incompatible);
}
