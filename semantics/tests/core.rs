//! The core model end to end: generated stubs, views, references, context
//! and errors, all in one node.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tether::abstractions::{FutureCall, Oneway, SyncCall};
use tether::ext::{AbstractionKind, Transaction, TransactionId};
use tether::{
    BoxFuture, Client, Context, Error, ErrorKind, Message, Node, Principal, Ref, Value, View,
    ViewError,
};
use tokio::sync::{Semaphore, mpsc};
use tower::{Layer, Service};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, tether::Schema)]
pub enum CalcError {
    DivideByZero,
}

#[tether::interface]
pub trait Calc {
    /// Adds.
    async fn add(&self, a: u64, b: u64) -> u64;
    async fn div(&self, a: u64, b: u64) -> Result<u64, CalcError>;
    async fn record(&self, note: String);
    /// Reports that it started, then waits for the gate.
    async fn wait(&self, tag: String) -> String;
    async fn boom(&self) -> u64;
    /// What the callee sees of its context.
    async fn whoami(&self) -> (u64, Option<u64>, Option<String>);
    /// Calls `add` on `other` (a nested call).
    async fn nested(&self, other: String) -> u64;
}

struct CalcObject {
    events: mpsc::UnboundedSender<String>,
    gate: Semaphore,
    notes: Mutex<Vec<String>>,
    node: Option<Node>,
}

impl CalcObject {
    fn new() -> (Self, mpsc::UnboundedReceiver<String>) {
        let (events, rx) = mpsc::unbounded_channel();
        (
            CalcObject {
                events,
                gate: Semaphore::new(0),
                notes: Mutex::new(Vec::new()),
                node: None,
            },
            rx,
        )
    }
}

impl Calc for CalcObject {
    async fn add(&self, a: u64, b: u64) -> u64 {
        a + b
    }
    async fn div(&self, a: u64, b: u64) -> Result<u64, CalcError> {
        a.checked_div(b).ok_or(CalcError::DivideByZero)
    }
    async fn record(&self, note: String) {
        self.notes.lock().unwrap().push(note.clone());
        let _ = self.events.send(format!("recorded {note}"));
    }
    async fn wait(&self, tag: String) -> String {
        let _ = self.events.send(format!("started {tag}"));
        let _guard = DropSignal(self.events.clone(), format!("dropped {tag}"));
        self.gate.acquire().await.unwrap().forget();
        std::mem::forget(_guard);
        let _ = self.events.send(format!("finished {tag}"));
        tag
    }
    async fn boom(&self) -> u64 {
        panic!("boom")
    }
    async fn whoami(&self) -> (u64, Option<u64>, Option<String>) {
        let ctx = Context::current().expect("a callee runs inside its call's context");
        (
            ctx.chain().0,
            ctx.transaction().map(|t| t.id().0),
            ctx.principal().map(|p| p.name().to_string()),
        )
    }
    async fn nested(&self, other: String) -> u64 {
        let node = self.node.as_ref().expect("nested needs a node");
        let other: CalcClient = node.lookup(&other).unwrap();
        let (chain, _, _) = other.whoami().await.unwrap();
        chain
    }
}

/// Sends a message when dropped: shows a callee's future was cancelled.
struct DropSignal(mpsc::UnboundedSender<String>, String);
impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send(std::mem::take(&mut self.1));
    }
}

/// Bounds every wait in these tests; a hang fails instead of blocking CI.
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("the test waited more than 10 s")
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    within(rx.recv()).await.expect("events channel open")
}

fn calc(
    node: &Node,
) -> (
    tether::Exposed<tether::Object<CalcObject>>,
    mpsc::UnboundedReceiver<String>,
) {
    let (object, rx) = CalcObject::new();
    (node.expose(object), rx)
}

#[tokio::test]
async fn sync_call_returns_typed_results_and_typed_errors() {
    let node = Node::new();
    let (exposed, _rx) = calc(&node);
    let client: CalcClient = exposed
        .with_view("v", CalcInterface::view())
        .unwrap()
        .client("v")
        .unwrap();

    assert_eq!(client.add(2, 3).await.unwrap(), 5);
    assert_eq!(client.div(9, 3).await.unwrap(), 3);
    let e: Error<CalcError> = client.div(1, 0).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed);
    assert_eq!(e.callee(), Some(&CalcError::DivideByZero));
    assert!(e.to_string().contains("Calc::div"), "{e}");
}

#[tokio::test]
async fn a_panicking_callee_fails_the_call_not_the_caller() {
    let node = Node::new();
    let (exposed, _rx) = calc(&node);
    let exposed = exposed.with_view("v", CalcInterface::view()).unwrap();
    let client: CalcClient = exposed.client("v").unwrap();
    let e = client.boom().await.unwrap_err();
    assert!(e.is_failed());
    assert!(e.message().contains("panicked: boom"), "{e}");
    // The object keeps serving.
    assert_eq!(client.add(1, 1).await.unwrap(), 2);
}

#[tokio::test]
async fn per_method_override_makes_one_method_oneway() {
    let node = Node::new();
    let (exposed, mut rx) = calc(&node);
    let exposed = exposed
        .with_view(
            "v",
            CalcInterface::view().method(CalcInterface::RECORD, Oneway),
        )
        .unwrap();
    let client: CalcClient = exposed.client("v").unwrap();
    let view = exposed.view("v").unwrap().describe().unwrap();
    assert_eq!(view.kind_of("record"), Some(AbstractionKind::Oneway));
    assert_eq!(view.kind_of("add"), Some(AbstractionKind::Sync));

    // The oneway call is sent before the caller awaits anything.
    let call = client.record("hello".into());
    assert!(call.is_started());
    assert_eq!(next(&mut rx).await, "recorded hello");
    call.await.unwrap();
    // Other methods stay sync: nothing runs until awaited.
    let add = client.add(1, 2);
    assert!(!add.is_started());
    assert_eq!(add.await.unwrap(), 3);
}

#[tokio::test]
async fn only_unit_methods_may_be_oneway() {
    let node = Node::new();
    let (exposed, _rx) = calc(&node);
    let e = exposed
        .set_view(
            "v",
            CalcInterface::view().method(CalcInterface::ADD, Oneway),
        )
        .unwrap_err();
    assert!(
        matches!(e, ViewError::NotOneway { method: "add", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("returns u64"), "{e}");
    // A Result<_, E> method cannot be oneway either: its error would be lost.
    let e = exposed
        .set_view("v", CalcInterface::view().abstraction(Oneway))
        .unwrap_err();
    assert!(e.to_string().contains("cannot be oneway"), "{e}");
    assert!(exposed.views().is_empty(), "a refused view is not attached");
}

#[tokio::test]
async fn future_calls_start_at_once_and_survive_a_dropped_handle() {
    let node = Node::new();
    let (exposed, mut rx) = calc(&node);
    let exposed = exposed
        .with_view("v", CalcInterface::view().abstraction(FutureCall))
        .unwrap();
    let client: CalcClient = exposed.client("v").unwrap();

    let handle = client.wait("a".into());
    assert!(handle.is_started());
    // Started without the handle being polled.
    assert_eq!(next(&mut rx).await, "started a");
    exposed.object().gate.add_permits(1);
    assert_eq!(within(handle).await.unwrap(), "a");
    assert_eq!(next(&mut rx).await, "finished a");

    // Dropping the handle does not cancel the call.
    drop(client.wait("b".into()));
    assert_eq!(next(&mut rx).await, "started b");
    exposed.object().gate.add_permits(1);
    assert_eq!(next(&mut rx).await, "finished b");
}

#[tokio::test]
async fn sync_calls_are_lazy_and_cancelled_when_dropped() {
    let node = Node::new();
    let (exposed, mut rx) = calc(&node);
    let exposed = exposed
        .with_view("v", CalcInterface::view().abstraction(SyncCall))
        .unwrap();
    let client: CalcClient = exposed.client("v").unwrap();

    drop(client.wait("never".into()));
    let mut call = Box::pin(client.wait("dropped".into()));
    // Poll once so the callee starts, then drop the call.
    assert!(futures_poll_once(call.as_mut()).await.is_none());
    assert_eq!(next(&mut rx).await, "started dropped");
    drop(call);
    assert_eq!(next(&mut rx).await, "dropped dropped");
    assert!(
        rx.try_recv().is_err(),
        "the never-polled call never started"
    );
}

async fn futures_poll_once<F: Future + Unpin>(mut f: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}

/// A filter that tags each call, counts it per object (state shared by
/// every view of the object), and records what it saw of the message.
#[derive(Clone)]
struct Tag {
    tag: &'static str,
    seen: Arc<Mutex<Vec<String>>>,
}

impl<S> Layer<S> for Tag {
    type Service = Tagged<S>;
    fn layer(&self, inner: S) -> Tagged<S> {
        Tagged {
            inner,
            tag: self.clone(),
        }
    }
}

#[derive(Clone)]
struct Tagged<S> {
    inner: S,
    tag: Tag,
}

#[derive(Default)]
struct PerObjectCount(AtomicU64);

impl<S: Service<Message>> Service<Message> for Tagged<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }
    fn call(&mut self, mut message: Message) -> S::Future {
        let count = message.target().state::<PerObjectCount>();
        let n = count.0.fetch_add(1, Ordering::SeqCst) + 1;
        let args = message
            .args()
            .args::<(u64, u64)>()
            .map(|(a, b)| format!(" args=({a},{b})"))
            .unwrap_or_default();
        self.tag.seen.lock().unwrap().push(format!(
            "{} {} view={} n={n}{args}",
            self.tag.tag,
            message.method_path(),
            message.target().view()
        ));
        message
            .context_mut()
            .set_transaction(Some(Transaction::subordinate(TransactionId(42))));
        self.inner.call(message)
    }
}

fn tag(t: &'static str) -> (Tag, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    (
        Tag {
            tag: t,
            seen: seen.clone(),
        },
        seen,
    )
}

#[tokio::test]
async fn one_object_many_views_with_their_own_filters_and_shared_state() {
    let node = Node::new();
    let (exposed, _rx) = calc(&node);
    let (audit, audit_seen) = tag("audit");
    let (other, other_seen) = tag("other");
    let exposed = exposed
        .with_view("audited", CalcInterface::view().layer(audit))
        .unwrap()
        .with_view("plain", CalcInterface::view())
        .unwrap()
        .with_view(
            "other",
            CalcInterface::view()
                .only([CalcInterface::ADD])
                .layer(other),
        )
        .unwrap();
    assert_eq!(exposed.views(), ["audited", "other", "plain"]);

    let audited: CalcClient = exposed.client("audited").unwrap();
    let plain: CalcClient = exposed.client("plain").unwrap();
    let narrow: CalcClient = exposed.client("other").unwrap();
    assert_eq!(audited.add(1, 2).await.unwrap(), 3);
    assert_eq!(plain.add(1, 2).await.unwrap(), 3);
    assert_eq!(narrow.add(3, 4).await.unwrap(), 7);
    assert!(narrow.div(1, 1).await.unwrap_err().is_unknown_method());

    // The filter saw the whole message, and the per-object count is shared
    // by both filtered views: the second filtered call is number 2.
    assert_eq!(
        *audit_seen.lock().unwrap(),
        ["audit Calc::add view=audited n=1 args=(1,2)"]
    );
    assert_eq!(
        *other_seen.lock().unwrap(),
        ["other Calc::add view=other n=2 args=(3,4)"]
    );
    // A filter changed the context, and the callee saw it.
    assert_eq!(audited.whoami().await.unwrap().1, Some(42));
    assert_eq!(plain.whoami().await.unwrap().1, None);
}

#[tokio::test]
async fn two_objects_of_one_type_have_different_semantics() {
    let node = Node::new();
    let (a, mut a_rx) = calc(&node);
    let (b, mut b_rx) = calc(&node);
    let a = a
        .with_view(
            "v",
            CalcInterface::view().method(CalcInterface::RECORD, Oneway),
        )
        .unwrap();
    let b = b.with_view("v", CalcInterface::view()).unwrap();
    let a: CalcClient = a.client("v").unwrap();
    let b: CalcClient = b.client("v").unwrap();
    assert!(a.record("x".into()).is_started());
    assert!(!b.record("y".into()).is_started(), "b's view is sync: lazy");
    assert_eq!(next(&mut a_rx).await, "recorded x");
    b.record("z".into()).await.unwrap();
    assert_eq!(next(&mut b_rx).await, "recorded z");
}

#[tokio::test]
async fn a_view_swapped_at_run_time_lets_running_calls_finish_under_the_old_one() {
    let node = Node::new();
    let (exposed, mut rx) = calc(&node);
    let (old, seen_old) = tag("old");
    let (new, seen_new) = tag("new");
    let reference = exposed
        .set_view("v", CalcInterface::view().layer(old))
        .unwrap();
    let client = CalcClient::from_ref(reference.clone()).unwrap();

    let running = tokio::spawn({
        let client = client.clone();
        async move { client.wait("first".into()).await }
    });
    assert_eq!(next(&mut rx).await, "started first");

    // Replace the view while `first` is inside the object.
    let again = exposed
        .set_view("v", CalcInterface::view().layer(new))
        .unwrap();
    assert_eq!(again, reference, "the reference survives the swap");
    assert_eq!(client.add(1, 1).await.unwrap(), 2);

    exposed.object().gate.add_permits(1);
    assert_eq!(within(running).await.unwrap().unwrap(), "first");
    assert_eq!(*seen_old.lock().unwrap(), ["old Calc::wait view=v n=1"]);
    assert_eq!(
        *seen_new.lock().unwrap(),
        ["new Calc::add view=v n=2 args=(1,1)"]
    );

    // A view may not change its interface under its references.
    let e = exposed.set_view("v", OtherInterface::view()).unwrap_err();
    assert!(matches!(e, ViewError::InterfaceChanged { .. }), "{e}");

    // Removed: calls fail with UnknownObject; re-added: the same reference
    // works again.
    assert!(exposed.remove_view("v"));
    assert!(!exposed.remove_view("v"));
    assert!(client.add(1, 1).await.unwrap_err().is_unknown_object());
    assert!(exposed.view("v").unwrap_err().is_unknown_object());
    exposed.set_view("v", CalcInterface::view()).unwrap();
    assert_eq!(client.add(2, 2).await.unwrap(), 4);
}

#[tether::interface]
pub trait Other {
    async fn ping(&self);
}

struct OtherObject;
impl Other for OtherObject {
    async fn ping(&self) {}
}

// One object may implement several interfaces; each view picks one.
impl Other for CalcObject {
    async fn ping(&self) {}
}

#[tokio::test]
async fn references_have_identity() {
    let node = Node::new();
    let (a, _) = calc(&node);
    let (b, _) = calc(&node);
    let a = a
        .with_view("x", CalcInterface::view())
        .unwrap()
        .with_view("y", CalcInterface::view())
        .unwrap();
    let b = b.with_view("x", CalcInterface::view()).unwrap();
    node.publish("a/x", a.view("x").unwrap());

    let ax = a.view("x").unwrap();
    assert_eq!(ax, a.view("x").unwrap());
    assert_eq!(ax, node.lookup_ref("a/x").unwrap());
    assert_ne!(ax, a.view("y").unwrap(), "another view of the same object");
    assert_ne!(
        ax,
        b.view("x").unwrap(),
        "the same view name on another object"
    );
    let set: HashSet<Ref> = [
        ax.clone(),
        a.view("x").unwrap(),
        a.view("y").unwrap(),
        b.view("x").unwrap(),
    ]
    .into_iter()
    .collect();
    assert_eq!(set.len(), 3);
    let c1: CalcClient = node.lookup("a/x").unwrap();
    let c2: CalcClient = a.client("x").unwrap();
    assert_eq!(c1, c2);
    assert_eq!(ax.target().object(), a.id());
    assert_eq!(ax.target().node(), node.id());
}

#[tokio::test]
async fn names_and_interfaces_are_checked() {
    let node = Node::new();
    let other = node
        .expose(OtherObject)
        .with_view("v", OtherInterface::view())
        .unwrap();
    node.publish("other", other.view("v").unwrap());
    let e = node.lookup::<CalcClient>("other").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Incompatible);
    assert!(e.message().contains("Other"), "{e}");
    assert!(
        node.lookup::<CalcClient>("nothing")
            .unwrap_err()
            .is_unknown_object()
    );
    assert!(node.lookup::<OtherClient>("other").is_ok());
    assert_eq!(node.published(), ["other"]);
    assert!(node.unpublish("other").is_some());
    assert!(node.lookup_ref("other").unwrap_err().is_unknown_object());
}

#[tokio::test]
async fn untyped_calls_with_wrong_arguments_or_selectors_are_refused() {
    let node = Node::new();
    let (exposed, _) = calc(&node);
    let r = exposed.set_view("v", CalcInterface::view()).unwrap();
    let add = CalcInterface::ADD.selector();
    let e = r
        .call(add, Value::new("not numbers"), Context::new())
        .await
        .unwrap_err();
    assert!(e.is_bad_arguments(), "{e}");
    let ok = r
        .call(add, Value::new((20_u64, 22_u64)), Context::new())
        .await
        .unwrap();
    assert_eq!(ok.downcast_ref::<u64>(), Some(&42));
    let bogus = tether::Selector::new("no_such_method");
    let e = r
        .call(bogus, Value::unit(), Context::new())
        .await
        .unwrap_err();
    assert!(e.is_unknown_method(), "{e}");
}

#[tokio::test]
async fn the_context_flows_into_callees_and_their_nested_calls() {
    let node = Node::new();
    let (mut object, _rx) = CalcObject::new();
    object.node = Some(node.clone());
    let outer = node
        .expose(object)
        .with_view("v", CalcInterface::view())
        .unwrap();
    let (inner, _rx2) = calc(&node);
    let inner = inner.with_view("v", CalcInterface::view()).unwrap();
    node.publish("inner", inner.view("v").unwrap());
    let outer: CalcClient = outer.client("v").unwrap();

    let ctx = Context::new()
        .with_principal(Principal::new("alice", ["teller"]))
        .with_transaction(Transaction::subordinate(TransactionId(7)));
    let chain = ctx.chain();
    let (seen_chain, tx, who) = ctx.clone().scope(outer.whoami()).await.unwrap();
    assert_eq!(seen_chain, chain.0);
    assert_eq!(tx, Some(7));
    assert_eq!(who.as_deref(), Some("alice"));
    // A call made by a callee belongs to the same chain.
    assert_eq!(
        ctx.scope(outer.nested("inner".into())).await.unwrap(),
        chain.0
    );
    // Outside any scope, every top-level call starts its own chain.
    let (c1, _, _) = outer.whoami().await.unwrap();
    let (c2, _, _) = outer.whoami().await.unwrap();
    assert_ne!(c1, c2);
}

#[tokio::test(start_paused = true)]
async fn deadlines_end_calls() {
    let node = Node::new();
    let (exposed, mut rx) = calc(&node);
    let exposed = exposed.with_view("v", CalcInterface::view()).unwrap();
    let client: CalcClient = exposed.client("v").unwrap();

    let past = Context::new().with_deadline(Instant::now());
    let e = past.scope(client.add(1, 1)).await.unwrap_err();
    assert!(e.is_deadline_exceeded(), "{e}");

    let soon = Context::new().with_deadline(Instant::now() + Duration::from_millis(50));
    let e = soon.scope(client.wait("slow".into())).await.unwrap_err();
    assert!(e.is_deadline_exceeded(), "{e}");
    assert_eq!(next(&mut rx).await, "started slow");
    assert_eq!(
        next(&mut rx).await,
        "dropped slow",
        "the callee was stopped"
    );
}

#[tokio::test]
async fn caller_side_filters_decorate_but_cannot_bypass_the_view() {
    let node = Node::new();
    let (exposed, mut rx) = calc(&node);
    let exposed = exposed
        .with_view(
            "v",
            CalcInterface::view()
                .only([CalcInterface::ADD, CalcInterface::RECORD])
                .method(CalcInterface::RECORD, Oneway),
        )
        .unwrap();
    let (mine, seen) = tag("caller");
    let client: CalcClient = exposed.client::<CalcClient>("v").unwrap().layer(mine);
    assert_eq!(client.add(2, 2).await.unwrap(), 4);
    assert!(client.div(4, 2).await.unwrap_err().is_unknown_method());
    // The receiver's oneway still applies to a caller with filters.
    assert!(client.record("r".into()).is_started());
    assert_eq!(next(&mut rx).await, "recorded r");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], "caller Calc::add view=v n=1 args=(2,2)");
    assert_eq!(
        seen.len(),
        2,
        "the refused call never reached the filters: {seen:?}"
    );
}

#[test]
fn calls_that_need_a_runtime_fail_clearly_outside_one() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let node = Node::new();
    let (exposed, _rx) = calc(&node);
    let exposed = exposed
        .with_view(
            "v",
            CalcInterface::view().method(CalcInterface::RECORD, Oneway),
        )
        .unwrap();
    let client: CalcClient = exposed.client("v").unwrap();
    let e = rt.block_on(client.record("x".into())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal);
    assert!(e.message().contains("tokio runtime"), "{e}");
}

#[test]
fn a_future_call_whose_runtime_shuts_down_reports_disconnected() {
    let node = Node::new();
    let (exposed, _rx) = calc(&node);
    let exposed = exposed
        .with_view("v", CalcInterface::view().abstraction(FutureCall))
        .unwrap();
    let client: CalcClient = exposed.client("v").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let handle = {
        let _in_runtime = rt.enter();
        client.wait("forever".into())
    };
    drop(rt);
    let other = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let e = other.block_on(handle).unwrap_err();
    assert!(e.is_disconnected(), "{e}");
}

/// An access filter written by hand: the error kinds a filter returns reach
/// the caller unchanged.
#[derive(Clone)]
struct DenyAll<S>(S);

impl<S> Service<Message> for DenyAll<S>
where
    S: Service<Message, Response = Value, Error = Error>,
{
    type Response = Value;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Value, Error>>;
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        self.0.poll_ready(cx)
    }
    fn call(&mut self, m: Message) -> Self::Future {
        let e = Error::new(
            ErrorKind::AccessDenied,
            format!("{} is not for you", m.method_path()),
        );
        Box::pin(async move { Err(e) })
    }
}

#[tokio::test]
async fn errors_from_filters_keep_their_kind() {
    let node = Node::new();
    let (exposed, mut rx) = calc(&node);
    let exposed = exposed
        .with_view(
            "v",
            CalcInterface::view().layer(tower::layer::layer_fn(DenyAll)),
        )
        .unwrap();
    let client: CalcClient = exposed.client("v").unwrap();
    let e = client.record("secret".into()).await.unwrap_err();
    assert!(e.is_access_denied());
    assert_eq!(e.to_string(), "access denied: Calc::record is not for you");
    assert!(rx.try_recv().is_err(), "a denied call has no effect");
    let e: Error<CalcError> = client.div(1, 0).await.unwrap_err();
    assert!(e.is_access_denied() && e.callee().is_none());
}

/// Hand-rolled services of messages can be exposed too.
#[tokio::test]
async fn a_tower_service_can_be_exposed_as_an_object() {
    let node = Node::new();
    let svc = tower::service_fn(|m: Message| async move {
        let (a, b) = *m
            .args()
            .args::<(u64, u64)>()
            .ok_or_else(|| Error::new(ErrorKind::BadArguments, "add takes two numbers"))?;
        Ok::<_, Error>(Value::new(a * b)) // a "calculator" that multiplies
    });
    let exposed = node
        .expose_service(svc)
        .with_view("v", View::<CalcInterface>::new().only([CalcInterface::ADD]))
        .unwrap();
    let client: CalcClient = exposed.client("v").unwrap();
    assert_eq!(client.add(6, 7).await.unwrap(), 42);
}
