//! The mutual-exclusion filter through generated stubs.
#![allow(missing_docs, clippy::unwrap_used)]

use std::future::Future;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tether::filters::MutexLayer;
use tether::{Context, Exposed, Node, Object};
use tokio::sync::Semaphore;

#[tether::interface]
pub trait Shared {
    /// Enters, records, waits for the gate.
    async fn write(&self, tag: String) -> usize;
    /// Same, as a reader.
    #[tether(read)]
    async fn read(&self, tag: String) -> usize;
    /// Calls `bounce` on `other`, which calls `ping` back on this object.
    async fn call_back(&self, me: String, other: String) -> u64;
    async fn bounce(&self, back: String) -> u64;
    async fn ping(&self) -> u64;
    /// Makes `n` `write` calls to the object published as `other`, side by
    /// side, and returns the most calls that were ever inside it at once.
    async fn fan(&self, other: String, n: u64) -> usize;
}

struct Room {
    node: Node,
    gate: Semaphore,
    inside: AtomicUsize,
    most: AtomicUsize,
    order: StdMutex<Vec<String>>,
}

impl Room {
    async fn enter(&self, tag: String) -> usize {
        self.order.lock().unwrap().push(tag);
        let now = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.gate.acquire().await.unwrap().forget();
        self.inside.fetch_sub(1, Ordering::SeqCst);
        self.most.load(Ordering::SeqCst)
    }
}

impl Shared for Room {
    async fn write(&self, tag: String) -> usize {
        self.enter(tag).await
    }
    async fn read(&self, tag: String) -> usize {
        self.enter(tag).await
    }
    async fn call_back(&self, me: String, other: String) -> u64 {
        let other: SharedClient = self.node.lookup(&other).unwrap();
        other.bounce(me).await.unwrap()
    }
    async fn bounce(&self, back: String) -> u64 {
        self.enter("bounce".into()).await;
        let back: SharedClient = self.node.lookup(&back).unwrap();
        back.ping().await.unwrap() + 1
    }
    async fn ping(&self) -> u64 {
        1
    }
    async fn fan(&self, other: String, n: u64) -> usize {
        let other: SharedClient = self.node.lookup(&other).unwrap();
        let calls = (0..n).map(|i| other.write(format!("fan{i}")));
        let most = futures_util::future::join_all(calls).await;
        most.into_iter().map(Result::unwrap).max().unwrap_or(0)
    }
}

fn room(node: &Node) -> Exposed<Object<Room>> {
    node.expose(Room {
        node: node.clone(),
        gate: Semaphore::new(0),
        inside: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
        order: StdMutex::new(Vec::new()),
    })
}

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("the test waited more than 10 s")
}

/// Waits until `n` calls are inside the object.
async fn until_inside(r: &Exposed<Object<Room>>, n: usize) {
    within(async {
        while r.object().inside.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

/// Lets queued calls reach the lock (on a current-thread runtime).
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn spawn_write(c: &SharedClient, tag: &str) -> tokio::task::JoinHandle<usize> {
    let (c, tag) = (c.clone(), tag.to_string());
    tokio::spawn(async move { c.write(tag).await.unwrap() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_filter_calls_overlap() {
    // The control: shows the test below can fail.
    let node = Node::new();
    let r = room(&node).with_view("v", SharedInterface::view()).unwrap();
    let c: SharedClient = r.client("v").unwrap();
    let calls = [spawn_write(&c, "a"), spawn_write(&c, "b")];
    until_inside(&r, 2).await;
    r.object().gate.add_permits(2);
    for call in calls {
        assert_eq!(within(call).await.unwrap(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_calls_never_overlap_even_through_two_views() {
    let node = Node::new();
    let r = room(&node)
        .with_view("a", SharedInterface::view().layer(MutexLayer::exclusive()))
        .unwrap()
        .with_view("b", SharedInterface::view().layer(MutexLayer::exclusive()))
        .unwrap();
    let a: SharedClient = r.client("a").unwrap();
    let b: SharedClient = r.client("b").unwrap();
    let calls: Vec<_> = (0..6)
        .map(|i| spawn_write(if i % 2 == 0 { &a } else { &b }, &format!("w{i}")))
        .collect();
    until_inside(&r, 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        r.object().inside.load(Ordering::SeqCst),
        1,
        "the others wait"
    );
    r.object().gate.add_permits(6);
    for call in calls {
        assert_eq!(within(call).await.unwrap(), 1, "never two inside");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_overlap_and_writers_wait_for_them() {
    readers_and_writer(MutexLayer::readers_writer([SharedInterface::READ])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_can_be_marked_in_the_trait() {
    readers_and_writer(MutexLayer::readers_writer_of::<SharedInterface>()).await;
}

async fn readers_and_writer(layer: MutexLayer) {
    let node = Node::new();
    let r = room(&node)
        .with_view("v", SharedInterface::view().layer(layer))
        .unwrap();
    let c: SharedClient = r.client("v").unwrap();
    let reads: Vec<_> = ["r1", "r2"]
        .into_iter()
        .map(|t| {
            let (c, t) = (c.clone(), t.to_string());
            tokio::spawn(async move { c.read(t).await.unwrap() })
        })
        .collect();
    until_inside(&r, 2).await; // both readers inside at once
    let write = spawn_write(&c, "w");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        r.object().inside.load(Ordering::SeqCst),
        2,
        "the writer waits"
    );
    r.object().gate.add_permits(2);
    for read in reads {
        within(read).await.unwrap();
    }
    until_inside(&r, 1).await;
    r.object().gate.add_permits(1);
    within(write).await.unwrap();
    assert_eq!(*r.object().order.lock().unwrap().last().unwrap(), "w");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_along_the_same_chain_re_enters_ahead_of_waiters() {
    let node = Node::new();
    let a = room(&node)
        .with_view("v", SharedInterface::view().layer(MutexLayer::exclusive()))
        .unwrap();
    let b = room(&node)
        .with_view("v", SharedInterface::view().layer(MutexLayer::exclusive()))
        .unwrap();
    node.publish("a", a.view("v").unwrap());
    node.publish("b", b.view("v").unwrap());
    let a_client: SharedClient = a.client("v").unwrap();

    // A holds its lock and calls B; B waits at its gate before calling A
    // back.
    let cycle = tokio::spawn({
        let a = a_client.clone();
        async move { a.call_back("a".into(), "b".into()).await.unwrap() }
    });
    until_inside(&b, 1).await;
    // An unrelated caller queues on A meanwhile.
    let mut unrelated = tokio::spawn({
        let a = a_client.clone();
        async move { a.ping().await.unwrap() }
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut unrelated)
            .await
            .is_err(),
        "an unrelated chain waits while A is held"
    );
    // B calls A back: the callback carries A's chain and enters ahead of
    // the waiter (which waits for A), so nothing deadlocks.
    b.object().gate.add_permits(1);
    assert_eq!(within(cycle).await.unwrap(), 2);
    assert_eq!(within(unrelated).await.unwrap(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn waiters_enter_in_arrival_order() {
    let node = Node::new();
    let r = room(&node)
        .with_view("v", SharedInterface::view().layer(MutexLayer::exclusive()))
        .unwrap();
    let c: SharedClient = r.client("v").unwrap();
    let first = spawn_write(&c, "first");
    settle().await;
    let waiting: Vec<_> = ["w1", "w2", "w3"]
        .into_iter()
        .map(|t| spawn_write(&c, t))
        .collect();
    settle().await;
    r.object().gate.add_permits(4);
    within(first).await.unwrap();
    for call in waiting {
        within(call).await.unwrap();
    }
    assert_eq!(
        *r.object().order.lock().unwrap(),
        ["first", "w1", "w2", "w3"]
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_waiter_gives_up_with_a_clear_error_and_the_lock_survives() {
    let node = Node::new();
    let r = room(&node)
        .with_view(
            "v",
            SharedInterface::view()
                .layer(MutexLayer::exclusive().max_wait(Duration::from_millis(50))),
        )
        .unwrap();
    let c: SharedClient = r.client("v").unwrap();
    let held = spawn_write(&c, "held");
    settle().await;
    let e = c.ping().await.unwrap_err();
    assert!(e.is_overloaded(), "{e}");
    assert!(
        e.message()
            .contains("Shared::ping waited 50ms for the lock of object-"),
        "{e}"
    );

    // A waiter that is cancelled leaves nothing behind either.
    let cancelled = spawn_write(&c, "cancelled");
    settle().await;
    cancelled.abort();
    settle().await;
    r.object().gate.add_permits(1);
    within(held).await.unwrap();
    assert_eq!(c.ping().await.unwrap(), 1, "the lock is free again");
    assert_eq!(*r.object().order.lock().unwrap(), ["held"]);
}

/// Re-entry is causal nesting, not a shared chain id: two calls started
/// side by side from one scope are two contenders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siblings_started_from_one_scope_exclude_each_other() {
    let node = Node::new();
    let r = room(&node)
        .with_view("v", SharedInterface::view().layer(MutexLayer::exclusive()))
        .unwrap();
    let c: SharedClient = r.client("v").unwrap();
    let both = tokio::spawn(Context::new().scope(async move {
        let (a, b) = tokio::join!(c.write("a".into()), c.write("b".into()));
        (a.unwrap(), b.unwrap())
    }));
    until_inside(&r, 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        r.object().inside.load(Ordering::SeqCst),
        1,
        "the sibling waits"
    );
    r.object().gate.add_permits(2);
    assert_eq!(within(both).await.unwrap(), (1, 1), "never two inside");
}

/// A callee that makes three calls into a guarded object at once: they
/// queue like anyone else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_from_one_callee_exclude_each_other() {
    let node = Node::new();
    let guarded = room(&node)
        .with_view("v", SharedInterface::view().layer(MutexLayer::exclusive()))
        .unwrap();
    let caller = room(&node).with_view("v", SharedInterface::view()).unwrap();
    node.publish("guarded", guarded.view("v").unwrap());
    let c: SharedClient = caller.client("v").unwrap();
    let fan = tokio::spawn(async move { c.fan("guarded".into(), 3).await.unwrap() });
    until_inside(&guarded, 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(guarded.object().inside.load(Ordering::SeqCst), 1);
    guarded.object().gate.add_permits(3);
    assert_eq!(within(fan).await.unwrap(), 1, "never two inside");
}

/// The holder's own nested calls re-enter, but one at a time: siblings
/// nested in the holder contend with each other, and all complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_nested_in_the_holder_re_enter_one_at_a_time() {
    let node = Node::new();
    let r = room(&node)
        .with_view("v", SharedInterface::view().layer(MutexLayer::exclusive()))
        .unwrap();
    node.publish("self", r.view("v").unwrap());
    let c: SharedClient = r.client("v").unwrap();
    let fan = tokio::spawn(async move { c.fan("self".into(), 3).await.unwrap() });
    until_inside(&r, 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(r.object().inside.load(Ordering::SeqCst), 1);
    r.object().gate.add_permits(3);
    assert_eq!(
        within(fan).await.unwrap(),
        1,
        "the holder's callbacks took turns"
    );
}

/// A waiting writer is not overtaken by a reader that merely shares the
/// holder's scope: only calls nested inside a holder skip the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sibling_reader_does_not_overtake_a_waiting_writer() {
    let node = Node::new();
    let r = room(&node)
        .with_view(
            "v",
            SharedInterface::view().layer(MutexLayer::readers_writer_of::<SharedInterface>()),
        )
        .unwrap();
    let c: SharedClient = r.client("v").unwrap();
    let scope = Context::new();
    let first = tokio::spawn(scope.clone().scope({
        let c = c.clone();
        async move { c.read("r1".into()).await.unwrap() }
    }));
    until_inside(&r, 1).await;
    let write = spawn_write(&c, "w");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = tokio::spawn(scope.scope({
        let c = c.clone();
        async move { c.read("r2".into()).await.unwrap() }
    }));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        r.object().inside.load(Ordering::SeqCst),
        1,
        "the second reader queues behind the writer"
    );
    r.object().gate.add_permits(3);
    within(first).await.unwrap();
    within(write).await.unwrap();
    within(second).await.unwrap();
    assert_eq!(*r.object().order.lock().unwrap(), ["r1", "w", "r2"]);
}
