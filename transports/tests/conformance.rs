//! One conformance suite, run unchanged over every carrier: calls of every
//! abstraction, errors of every kind, references and identity, callbacks,
//! release, cancellation, deadlines, disconnection and limits.
#![allow(missing_docs, clippy::unwrap_used)]

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tether::abstractions::{FutureCall, Multicast, Oneway, Policy};
use tether::transports::{Config, Listener, Peer, memory, quic, tcp, ws};
use tether::{Client, Context, ErrorKind, Node};

#[tether::interface]
pub trait Calc {
    async fn add(&self, a: u64, b: u64) -> u64;
    async fn divide(&self, a: u64, b: u64) -> Result<u64, String>;
    async fn note(&self, text: String);
    async fn slow(&self, ms: u64) -> u64;
    async fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    async fn boom(&self) -> u64;
}

#[tether::interface]
pub trait Callback {
    async fn ping(&self, n: u64) -> u64;
}

#[tether::interface]
pub trait Hub {
    /// Calls `cb.ping(n)` before answering (which may call back here).
    async fn bounce(&self, cb: CallbackClient, n: u64) -> u64;
    async fn give(&self) -> CalcClient;
    async fn same(&self, a: CalcClient, b: CalcClient) -> bool;
    async fn is_home(&self, c: CalcClient) -> bool;
    async fn keep(&self, cb: CallbackClient);
    async fn drop_kept(&self);
}

#[derive(Default)]
struct Calculator {
    notes: Mutex<Vec<String>>,
    started: AtomicU64,
    dropped: Arc<AtomicU64>,
}

struct CountDrop(Arc<AtomicU64>);
impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Calc for Calculator {
    async fn add(&self, a: u64, b: u64) -> u64 {
        a + b
    }
    async fn divide(&self, a: u64, b: u64) -> Result<u64, String> {
        a.checked_div(b)
            .ok_or_else(|| "division by zero".to_string())
    }
    async fn note(&self, text: String) {
        self.notes.lock().unwrap().push(text);
    }
    async fn slow(&self, ms: u64) -> u64 {
        self.started.fetch_add(1, Ordering::SeqCst);
        let _guard = CountDrop(Arc::clone(&self.dropped));
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
    async fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
    async fn boom(&self) -> u64 {
        panic!("boom")
    }
}

struct Server {
    calc: OnceLock<CalcClient>,
    kept: Mutex<Option<CallbackClient>>,
}

impl Hub for Server {
    async fn bounce(&self, cb: CallbackClient, n: u64) -> u64 {
        cb.ping(n).await.unwrap() + 1
    }
    async fn give(&self) -> CalcClient {
        self.calc.get().unwrap().clone()
    }
    async fn same(&self, a: CalcClient, b: CalcClient) -> bool {
        a == b
    }
    async fn is_home(&self, c: CalcClient) -> bool {
        &c == self.calc.get().unwrap()
    }
    async fn keep(&self, cb: CallbackClient) {
        *self.kept.lock().unwrap() = Some(cb);
    }
    async fn drop_kept(&self) {
        self.kept.lock().unwrap().take();
    }
}

/// The client's callback: pings back into the hub until `n` reaches zero.
struct Pinger {
    hub: HubClient,
    me: OnceLock<CallbackClient>,
}

impl Callback for Pinger {
    async fn ping(&self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let me = self.me.get().unwrap().clone();
        self.hub.bounce(me, n - 1).await.unwrap() * 10
    }
}

/// The server node with everything the suite calls.
struct World {
    node: Node,
    calc: tether::Exposed<tether::Object<Calculator>>,
}

fn server_world() -> World {
    let node = Node::new();
    let calc = node
        .expose(Calculator::default())
        .with_view("plain", CalcInterface::view())
        .unwrap()
        .with_view(
            "async",
            CalcInterface::view()
                .method(CalcInterface::NOTE, Oneway)
                .method(CalcInterface::SLOW, FutureCall),
        )
        .unwrap()
        .with_view("narrow", CalcInterface::view().only([CalcInterface::ADD]))
        .unwrap();
    node.publish("calc", calc.view("plain").unwrap());
    node.publish("calc/async", calc.view("async").unwrap());
    node.publish("calc/narrow", calc.view("narrow").unwrap());
    let hub = node
        .expose(Server {
            calc: OnceLock::new(),
            kept: Mutex::new(None),
        })
        .with_view("hub", HubInterface::view())
        .unwrap();
    hub.object()
        .calc
        .set(calc.client("plain").unwrap())
        .ok()
        .unwrap();
    node.publish("hub", hub.view("hub").unwrap());
    World { node, calc }
}

/// Both ends of one connection.
struct Link {
    client: Peer,
    server: Peer,
    listener: Option<Listener>,
}

impl Link {
    async fn close(self) {
        self.client.close().await;
        self.server.closed().await;
        if let Some(l) = self.listener {
            l.close().await;
        }
    }
}

/// Waits (bounded) for the listener to have accepted the connection.
async fn accepted(listener: &Listener) -> Peer {
    for _ in 0..500 {
        if let Some(p) = listener.peers().pop() {
            p.opened().await.unwrap();
            return p;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the listener accepted no connection within 5 s");
}

/// The link of a client connected to `listener`.
async fn linked(client: Peer, listener: Listener) -> Link {
    client.opened().await.unwrap();
    let server = accepted(&listener).await;
    Link {
        client,
        server,
        listener: Some(listener),
    }
}

/// A call of `slow` that runs until it is aborted.
fn spawn_slow(calc: &CalcClient) -> tokio::task::JoinHandle<Result<u64, tether::Error>> {
    let calc = calc.clone();
    tokio::spawn(async move { calc.slow(60_000).await })
}

async fn link_memory(server: &Node, client: &Node, sc: Config, cc: Config) -> Link {
    let (client, server) = memory::pair(client, server, cc, sc);
    client.opened().await.unwrap();
    server.opened().await.unwrap();
    Link {
        client,
        server,
        listener: None,
    }
}

async fn link_tcp(server: &Node, client: &Node, sc: Config, cc: Config) -> Link {
    let listener = tcp::serve(server, "127.0.0.1:0", sc).await.unwrap();
    let client = tcp::connect(client, listener.local_addr(), cc)
        .await
        .unwrap();
    linked(client, listener).await
}

async fn link_ws(server: &Node, client: &Node, sc: Config, cc: Config) -> Link {
    let listener = ws::serve(server, "127.0.0.1:0", sc).await.unwrap();
    let url = format!("ws://{}/", listener.local_addr());
    let client = ws::connect(client, &url, cc).await.unwrap();
    linked(client, listener).await
}

async fn link_quic(server: &Node, client: &Node, sc: Config, cc: Config) -> Link {
    let (cert, key) = quic::dev_certificate(&["localhost"]).unwrap();
    let tls = quic::server_config(vec![cert.clone()], key).unwrap();
    let listener = quic::serve(server, "127.0.0.1:0".parse().unwrap(), tls, sc)
        .await
        .unwrap();
    let tls = quic::client_config(quic::trust(cert).unwrap()).unwrap();
    let client = quic::connect(client, listener.local_addr(), "localhost", tls, cc)
        .await
        .unwrap();
    linked(client, listener).await
}

/// Polls `cond` every 10 ms, up to 5 s; fails the test if it never holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 5 s");
}

/// Runs `f` with a bound, so that a hang fails the test instead of CI.
async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("the test hung")
}

macro_rules! conformance {
    ($($carrier:ident => $link:ident),* $(,)?) => {$(
        mod $carrier {
            use super::*;

            async fn link(world: &World, client: &Node) -> Link {
                $link(&world.node, client, Config::new(), Config::new()).await
            }

            async fn link_with(world: &World, client: &Node, sc: Config, cc: Config) -> Link {
                $link(&world.node, client, sc, cc).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sync_calls_and_every_error_kind() {
                bounded(super::sync_calls_and_every_error_kind(|w, c| Box::pin(link(w, c)))).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn oneway_future_and_multicast() {
                bounded(super::oneway_future_and_multicast(|w, c| Box::pin(link(w, c)))).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn references_keep_identity() {
                bounded(super::references_keep_identity(|w, c| Box::pin(link(w, c)))).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn callbacks_nest_before_answering() {
                bounded(super::callbacks_nest_before_answering(|w, c| Box::pin(link(w, c)))).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn references_are_released() {
                bounded(super::references_are_released(|w, c| Box::pin(link(w, c)))).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cancellation_and_deadlines_reach_the_callee() {
                bounded(super::cancellation_and_deadlines(|w, c| Box::pin(link(w, c)))).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn disconnection_fails_pending_and_later_calls() {
                bounded(super::disconnection(|w, c| Box::pin(link(w, c)))).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn limits_give_clear_errors() {
                bounded(super::limits(|w, c, sc, cc| Box::pin(link_with(w, c, sc, cc)))).await
            }
        }
    )*};
}

conformance! {
    in_memory => link_memory,
    over_tcp => link_tcp,
    over_websocket => link_ws,
    over_quic => link_quic,
}

type Linker =
    for<'a> fn(&'a World, &'a Node) -> std::pin::Pin<Box<dyn Future<Output = Link> + Send + 'a>>;
type LinkerWith = for<'a> fn(
    &'a World,
    &'a Node,
    Config,
    Config,
) -> std::pin::Pin<Box<dyn Future<Output = Link> + Send + 'a>>;

async fn sync_calls_and_every_error_kind(link: Linker) {
    let world = server_world();
    let node = Node::new();
    let l = link(&world, &node).await;
    let calc: CalcClient = l.client.lookup("calc").await.unwrap();
    assert_eq!(calc.add(2, 3).await.unwrap(), 5);
    assert_eq!(calc.divide(9, 3).await.unwrap(), 3);

    let e = calc.divide(1, 0).await.unwrap_err();
    assert!(e.is_failed(), "{e}");
    assert_eq!(e.callee().map(String::as_str), Some("division by zero"));

    let e = calc.boom().await.unwrap_err();
    assert!(e.is_failed() && e.message().contains("boom"), "{e}");

    let narrow: CalcClient = l.client.lookup("calc/narrow").await.unwrap();
    assert_eq!(narrow.add(1, 1).await.unwrap(), 2);
    let e = narrow.divide(1, 1).await.unwrap_err();
    assert!(e.is_unknown_method(), "{e}");

    let e = l.client.lookup::<CalcClient>("nobody").await.unwrap_err();
    assert!(e.is_unknown_object(), "{e}");
    let e = l.client.lookup::<HubClient>("calc").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Incompatible, "{e}");

    // Untyped: a selector the interface lacks, and arguments of the wrong type.
    let e = calc
        .reference()
        .call(
            tether::Selector::new("no_such_method"),
            tether::Value::serializable((1_u8,)),
            Context::new(),
        )
        .await
        .unwrap_err();
    assert!(e.is_unknown_method(), "{e}");
    let e = calc
        .reference()
        .call(
            CalcInterface::ADD.selector(),
            tether::Value::serializable(("not numbers".to_string(),)),
            Context::new(),
        )
        .await
        .unwrap_err();
    assert!(e.is_bad_arguments(), "{e}");
    // The connection still serves.
    assert_eq!(calc.add(40, 2).await.unwrap(), 42);
    l.close().await;
}

async fn oneway_future_and_multicast(link: Linker) {
    let world = server_world();
    let node = Node::new();
    let l = link(&world, &node).await;
    let calc: CalcClient = l.client.lookup("calc/async").await.unwrap();
    let desc = calc.reference().describe().unwrap();
    assert_eq!(desc.kind_of("note"), Some(tether::AbstractionKind::Oneway));
    assert_eq!(desc.kind_of("slow"), Some(tether::AbstractionKind::Future));

    calc.note("hello".into()).await.unwrap();
    let notes = || world.calc.object().notes.lock().unwrap().clone();
    eventually("the oneway note arrives", || notes() == ["hello"]).await;

    let started = calc.slow(1);
    assert!(
        started.is_started(),
        "a future method starts before it is awaited"
    );
    eventually("the future call runs", || {
        world.calc.object().started.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(started.await.unwrap(), 1);

    // A multicast group of two remote members and a local one.
    let other = Node::new();
    let local = other
        .expose(Calculator::default())
        .with_view("plain", CalcInterface::view())
        .unwrap();
    let remote_a: CalcClient = l.client.lookup("calc").await.unwrap();
    let remote_b: CalcClient = l.client.lookup("calc/narrow").await.unwrap();
    let group = Multicast::new(
        [
            remote_a.reference().clone(),
            remote_b.reference().clone(),
            local.view("plain").unwrap(),
        ],
        Policy::All,
    )
    .unwrap();
    let each = group.client::<CalcClient>().unwrap();
    assert_eq!(each.add(20, 1).await.unwrap(), 21);
    l.close().await;
}

async fn references_keep_identity(link: Linker) {
    let world = server_world();
    let node = Node::new();
    let l = link(&world, &node).await;
    let hub: HubClient = l.client.lookup("hub").await.unwrap();
    let a = hub.give().await.unwrap();
    let b = hub.give().await.unwrap();
    assert_eq!(a, b, "the same view sent twice arrives as equal references");
    let looked_up: CalcClient = l.client.lookup("calc").await.unwrap();
    assert_eq!(a, looked_up, "however it was obtained");
    assert_eq!(a.add(1, 2).await.unwrap(), 3);

    assert!(hub.same(a.clone(), b.clone()).await.unwrap());
    assert!(
        hub.is_home(a.clone()).await.unwrap(),
        "a reference sent home resolves to the local object"
    );
    // The client's own object, sent out and back, is the same object.
    let pinger = Arc::new(Pinger {
        hub: hub.clone(),
        me: OnceLock::new(),
    });
    let mine = node
        .expose_arc(Arc::clone(&pinger))
        .with_view("cb", CallbackInterface::view())
        .unwrap();
    let cb: CallbackClient = mine.client("cb").unwrap();
    pinger.me.set(cb.clone()).ok().unwrap();
    hub.keep(cb.clone()).await.unwrap();
    hub.keep(cb.clone()).await.unwrap();
    assert_eq!(
        l.server.tables().imports,
        1,
        "one import for one view, sent twice"
    );
    hub.drop_kept().await.unwrap();
    l.close().await;
}

async fn callbacks_nest_before_answering(link: Linker) {
    let world = server_world();
    let node = Node::new();
    let l = link(&world, &node).await;
    let hub: HubClient = l.client.lookup("hub").await.unwrap();
    let pinger = Arc::new(Pinger {
        hub: hub.clone(),
        me: OnceLock::new(),
    });
    let cb: CallbackClient = node
        .expose_arc(Arc::clone(&pinger))
        .with_view("cb", CallbackInterface::view())
        .unwrap()
        .client("cb")
        .unwrap();
    pinger.me.set(cb.clone()).ok().unwrap();
    // client → hub.bounce(3) → cb.ping(3) → hub.bounce(2) → cb.ping(2) → … → 0
    // bounce adds 1, ping multiplies by 10: ((((0+1)*10+1)*10+1)*10+1) = 1111.
    assert_eq!(hub.bounce(cb.clone(), 3).await.unwrap(), 1111);
    l.close().await;
}

async fn references_are_released(link: Linker) {
    let world = server_world();
    let node = Node::new();
    let l = link(&world, &node).await;
    let hub: HubClient = l.client.lookup("hub").await.unwrap();
    let baseline = l.client.tables().exports;
    let cb: CallbackClient = node
        .expose(Pinger {
            hub: hub.clone(),
            me: OnceLock::new(),
        })
        .with_view("cb", CallbackInterface::view())
        .unwrap()
        .client("cb")
        .unwrap();
    hub.keep(cb.clone()).await.unwrap();
    assert_eq!(l.client.tables().exports, baseline + 1);
    assert_eq!(l.server.tables().imports, 1);
    // Sent twice, counted twice: the export stays while the server holds it.
    hub.keep(cb.clone()).await.unwrap();
    hub.drop_kept().await.unwrap();
    eventually("the server releases its last proxy", || {
        l.server.tables().imports == 0 && l.client.tables().exports == baseline
    })
    .await;

    // The client's imports go the same way: drop every stub of the server's.
    let before = l.client.tables().imports;
    let given = hub.give().await.unwrap();
    assert_eq!(l.client.tables().imports, before + 1);
    drop(given);
    eventually("the client releases the given reference", || {
        l.client.tables().imports == before
    })
    .await;

    // Closing the connection releases everything it held.
    hub.keep(cb.clone()).await.unwrap();
    let server = l.server.clone();
    l.close().await;
    let t = server.tables();
    assert_eq!((t.exports, t.imports), (0, 0), "{t:?}");
}

async fn cancellation_and_deadlines(link: Linker) {
    let world = server_world();
    let node = Node::new();
    let l = link(&world, &node).await;
    let calc: CalcClient = l.client.lookup("calc").await.unwrap();
    let dropped = Arc::clone(&world.calc.object().dropped);

    // Dropping a pending sync call cancels it at the callee.
    let waited = tokio::time::timeout(Duration::from_millis(100), calc.slow(60_000)).await;
    assert!(waited.is_err(), "the slow call cannot have finished");
    eventually("the callee's handler is dropped", || {
        dropped.load(Ordering::SeqCst) == 1 && l.server.tables().answers == 0
    })
    .await;
    assert_eq!(l.client.tables().questions, 0);

    // A deadline travels and ends the call at the callee.
    let deadline = Instant::now() + Duration::from_millis(100);
    let e = Context::new()
        .with_deadline(deadline)
        .scope(calc.slow(60_000))
        .await
        .unwrap_err();
    assert!(e.is_deadline_exceeded(), "{e}");
    eventually("the callee stops at the deadline", || {
        dropped.load(Ordering::SeqCst) == 2
    })
    .await;
    l.close().await;
}

async fn disconnection(link: Linker) {
    let world = server_world();
    let node = Node::new();
    let l = link(&world, &node).await;
    let calc: CalcClient = l.client.lookup("calc").await.unwrap();
    let pending = spawn_slow(&calc);
    eventually("the slow call runs", || l.server.tables().answers == 1).await;
    l.server.abort();
    let e = pending.await.unwrap().unwrap_err();
    assert!(e.is_disconnected(), "{e}");
    let e = calc.add(1, 1).await.unwrap_err();
    assert!(e.is_disconnected(), "later calls fail the same way: {e}");
    let closed = l.client.closed().await;
    assert!(!closed.by_us, "the peer went away: {closed:?}");
    if let Some(listener) = l.listener {
        listener.close().await;
    }
}

async fn limits(link: LinkerWith) {
    let world = server_world();
    let node = Node::new();
    let server_config = Config::new().max_in_flight(2).max_frame(64 * 1024);
    let l = link(&world, &node, server_config, Config::new()).await;
    let calc: CalcClient = l.client.lookup("calc").await.unwrap();

    // A frame over the server's limit is refused before it is sent.
    let e = calc.echo(vec![7; 100 * 1024]).await.unwrap_err();
    assert!(e.is_bad_arguments() && e.message().contains("limit"), "{e}");
    assert_eq!(calc.echo(vec![7; 1024]).await.unwrap(), vec![7; 1024]);

    // Beyond two calls in flight: overloaded, at once.
    let a = spawn_slow(&calc);
    let b = spawn_slow(&calc);
    eventually("two calls run", || l.server.tables().answers == 2).await;
    let e = calc.add(1, 1).await.unwrap_err();
    assert!(e.is_overloaded(), "{e}");
    a.abort();
    b.abort();
    eventually("the aborted calls are cancelled", || {
        l.server.tables().answers == 0
    })
    .await;
    assert_eq!(calc.add(1, 1).await.unwrap(), 2);
    l.close().await;
}
