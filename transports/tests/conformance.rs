//! One conformance suite, run unchanged over every carrier: calls of every
//! abstraction, errors of every kind, references and identity, callbacks,
//! release, cancellation, deadlines, disconnection and limits.
#![allow(missing_docs, clippy::unwrap_used)]

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tether::abstractions::{FutureCall, Multicast, Oneway, Policy};
use tether::ext::AbstractionKind;
use tether::filters::AccessLayer;
use tether::filters::access::Who;
use tether::transports::{Config, Listener, Peer, memory, quic, relay, tcp, ws};
use tether::{Client, Context, Directory, ErrorKind, Message, Node};

#[tether::interface]
pub trait Calc {
    async fn add(&self, a: u64, b: u64) -> u64;
    async fn divide(&self, a: u64, b: u64) -> Result<u64, String>;
    async fn note(&self, text: String);
    async fn slow(&self, ms: u64) -> u64;
    async fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    async fn boom(&self) -> u64;
    /// Waits at the calculator's gate.
    async fn wait(&self);
    /// Takes an argument whose decodes are counted.
    async fn count(&self, v: Counted) -> u64;
}

/// A `u64` that counts how often it is decoded, to check that a remote
/// call's arguments are decoded once, whoever reads them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, tether::Schema)]
pub struct Counted(pub u64);

static DECODED: AtomicU64 = AtomicU64::new(0);

impl<'de> serde::Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DECODED.fetch_add(1, Ordering::SeqCst);
        u64::deserialize(d).map(Counted)
    }
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
    /// The calculator, by name; fails for any name but `calc`.
    async fn find(&self, name: String) -> Result<CalcClient, String>;
    async fn same(&self, a: CalcClient, b: CalcClient) -> bool;
    async fn is_home(&self, c: CalcClient) -> bool;
    async fn keep(&self, cb: CallbackClient);
    async fn drop_kept(&self);
    /// Fails, having been handed a callback.
    async fn refuse(&self, cb: CallbackClient) -> Result<u64, String>;
    /// Holds a callback for `ms`.
    async fn hold(&self, cb: CallbackClient, ms: u64) -> u64;
}

#[derive(Default)]
struct Calculator {
    notes: Mutex<Vec<String>>,
    started: AtomicU64,
    dropped: Arc<AtomicU64>,
    gate: Gate,
    waiting: AtomicU64,
}

/// A closed gate: each permit lets one waiter through.
struct Gate(tokio::sync::Semaphore);
impl Default for Gate {
    fn default() -> Self {
        Gate(tokio::sync::Semaphore::new(0))
    }
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
    async fn wait(&self) {
        struct Leave<'a>(&'a AtomicU64);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(&self.waiting);
        self.gate.0.acquire().await.unwrap().forget();
    }
    async fn count(&self, v: Counted) -> u64 {
        v.0
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
    async fn find(&self, name: String) -> Result<CalcClient, String> {
        match name.as_str() {
            "calc" => Ok(self.calc.get().unwrap().clone()),
            _ => Err(format!("no calc named {name}")),
        }
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
    async fn refuse(&self, _cb: CallbackClient) -> Result<u64, String> {
        Err("refused".into())
    }
    async fn hold(&self, _cb: CallbackClient, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
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
        .unwrap()
        .with_view("checked", CalcInterface::view().layer(small_sums_only()))
        .unwrap()
        .with_view("swap", CalcInterface::view())
        .unwrap();
    node.publish("calc", calc.view("plain").unwrap());
    node.publish("calc/checked", calc.view("checked").unwrap());
    node.publish("calc/swap", calc.view("swap").unwrap());
    node.publish("calc/async", calc.view("async").unwrap());
    node.publish("calc/narrow", calc.view("narrow").unwrap());
    let hub = node
        .expose(Server {
            calc: OnceLock::new(),
            kept: Mutex::new(None),
        })
        .with_view("hub", HubInterface::view())
        .unwrap()
        .with_view(
            "guarded",
            HubInterface::view().layer(
                AccessLayer::deny_all().allow_methods(Who::Anyone, [HubInterface::DROP_KEPT]),
            ),
        )
        .unwrap();
    hub.object()
        .calc
        .set(calc.client("plain").unwrap())
        .ok()
        .unwrap();
    node.publish("hub", hub.view("hub").unwrap());
    node.publish("hub/guarded", hub.view("guarded").unwrap());
    World { node, calc }
}

/// A filter that reads typed arguments: `add` and `count` only with
/// operands under 100. It refuses what it cannot read, so a filter that
/// cannot see remote arguments shows up as refusing everything remote.
fn small_sums_only() -> tower::filter::FilterLayer<fn(Message) -> Result<Message, tether::Error>> {
    tower::filter::FilterLayer::new(|message: Message| {
        let small = if message.selector() == CalcInterface::ADD.selector() {
            let (a, b) = message.args().try_args::<(u64, u64)>()?;
            *a < 100 && *b < 100
        } else if message.selector() == CalcInterface::COUNT.selector() {
            let (v,) = message.args().try_args::<(Counted,)>()?;
            v.0 < 100
        } else {
            true
        };
        if small {
            Ok(message)
        } else {
            Err(tether::Error::new(
                ErrorKind::AccessDenied,
                "operands of 100 or more",
            ))
        }
    })
}

/// Both ends of one connection.
struct Link {
    client: Peer,
    server: Peer,
    listener: Option<Listener>,
    /// What else the link needs alive (a relay and a registration).
    guards: Vec<Box<dyn std::any::Any + Send>>,
}

impl Link {
    async fn close(self) {
        self.client.close().await;
        self.server.closed().await;
        if let Some(l) = self.listener {
            l.close().await;
        }
        drop(self.guards);
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
        guards: Vec::new(),
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
        guards: Vec::new(),
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

async fn link_relay(server: &Node, client: &Node, sc: Config, cc: Config) -> Link {
    let relay = relay::Relay::serve("127.0.0.1:0", None, relay::RelayConfig::default())
        .await
        .unwrap();
    let registration = relay::serve_through(server, relay.tcp_addr(), None, sc)
        .await
        .unwrap();
    let client = relay::connect(client, relay.tcp_addr(), registration.server_id(), cc)
        .await
        .unwrap();
    client.opened().await.unwrap();
    let mut linked = None;
    for _ in 0..500 {
        if let Some(p) = registration.peers().pop() {
            linked = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let server = linked.expect("the registration linked no client within 5 s");
    server.opened().await.unwrap();
    Link {
        client,
        server,
        listener: None,
        guards: vec![Box::new(registration), Box::new(relay)],
    }
}

async fn link_quic(server: &Node, client: &Node, sc: Config, cc: Config) -> Link {
    let dev = quic::Dev::localhost().unwrap();
    let listener = dev.serve(server, "127.0.0.1:0", sc).await.unwrap();
    let client = dev
        .connect(client, listener.local_addr(), cc)
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
            async fn filters_read_remote_arguments_as_local_ones() {
                bounded(super::filters_read_remote_arguments(|w, c| Box::pin(link(w, c)))).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn references_in_refused_failed_cancelled_and_expired_calls_are_released() {
                bounded(super::references_in_calls_that_do_not_run(|w, c| Box::pin(link(w, c)))).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_connection_offers_only_its_directory() {
                bounded(super::only_its_directory(|w, c, sc, cc| Box::pin(link_with(w, c, sc, cc)))).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_swapped_view_reaches_remote_callers() {
                bounded(super::swaps_reach_remote_callers(|w, c| Box::pin(link(w, c)))).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn promises_pipeline_in_order_and_release_their_tables() {
                bounded(super::pipelining(|w, c| Box::pin(link(w, c)))).await
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
    through_a_relay => link_relay,
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
    assert_eq!(
        desc.kind_of("note"),
        Some(tether::ext::AbstractionKind::Oneway)
    );
    assert_eq!(
        desc.kind_of("slow"),
        Some(tether::ext::AbstractionKind::Future)
    );

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

/// The pipelining tables of one side: kept answers, held calls,
/// questions, answers.
fn pipelining_tables(t: tether::transports::Tables) -> [usize; 4] {
    [t.promises, t.held, t.questions, t.answers]
}

async fn pipelining(link: Linker) {
    use futures_util::future::join_all;
    let world = server_world();
    let node = Node::new();
    let l = link(&world, &node).await;
    let hub: HubClient = l.client.lookup("hub").await.unwrap();
    let object = world.calc.object();
    let before = [
        pipelining_tables(l.client.tables()),
        pipelining_tables(l.server.tables()),
    ];

    // A call to the result of a call that has not answered yet.
    assert_eq!(hub.give().pipeline().add(2, 3).await.unwrap(), 5);
    assert_eq!(
        hub.find("calc".into()).pipeline().add(1, 1).await.unwrap(),
        2
    );

    // The first call's failure fails the call through its promise.
    let e = hub
        .find("abacus".into())
        .pipeline()
        .add(1, 1)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(e.message().contains("no calc named abacus"), "{e}");

    // In send order: calls through the promise made before its answer,
    // then calls through the promise and the reference it resolved to,
    // interleaved.
    let promise = hub.give().pipeline();
    let early = join_all((0..50).map(|n| promise.note(n.to_string()))).await;
    assert!(early.iter().all(Result::is_ok));
    let direct = promise.resolved().await.unwrap();
    let mixed = join_all((50..150).map(|n| {
        let (p, d) = (promise.clone(), direct.clone());
        async move {
            if n % 2 == 0 {
                p.note(n.to_string()).await
            } else {
                d.note(n.to_string()).await
            }
        }
    }))
    .await;
    assert!(mixed.iter().all(Result::is_ok));
    let expected: Vec<String> = (0..150).map(|n: u32| n.to_string()).collect();
    assert_eq!(*object.notes.lock().unwrap(), expected);

    // Cancelling a call through a promise reaches the callee.
    let slow = tokio::spawn({
        let promise = promise.clone();
        async move { promise.slow(60_000).await }
    });
    eventually("the slow call starts", || {
        object.started.load(Ordering::SeqCst) == 1
    })
    .await;
    slow.abort();
    eventually("the callee's handler is dropped", || {
        object.dropped.load(Ordering::SeqCst) == 1
    })
    .await;

    // With the promises gone, no table keeps an entry.
    drop((promise, direct));
    eventually("the tables return to where they were", || {
        [
            pipelining_tables(l.client.tables()),
            pipelining_tables(l.server.tables()),
        ] == before
    })
    .await;
    l.close().await;
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

async fn filters_read_remote_arguments(link: Linker) {
    let world = server_world();
    let local: CalcClient = world.node.lookup("calc/checked").unwrap();
    let node = Node::new();
    let l = link(&world, &node).await;
    let remote: CalcClient = l.client.lookup("calc/checked").await.unwrap();
    for calc in [&local, &remote] {
        assert_eq!(calc.add(2, 3).await.unwrap(), 5, "small sums pass");
        let e = calc.add(200, 3).await.unwrap_err();
        assert!(
            e.is_access_denied(),
            "the same refusal locally and remotely: {e}"
        );
    }
    // Arguments that do not decode as the filter's types: a clear error.
    let e = remote
        .reference()
        .call(
            CalcInterface::ADD.selector(),
            tether::Value::serializable(("not numbers".to_string(),)),
            Context::new(),
        )
        .await
        .unwrap_err();
    assert!(
        e.is_bad_arguments() && e.message().contains("(u64, u64)"),
        "{e}"
    );
    // Decoded once: the filter reads the argument, the skeleton takes it.
    let before = DECODED.load(Ordering::SeqCst);
    assert_eq!(remote.count(Counted(7)).await.unwrap(), 7);
    assert_eq!(
        DECODED.load(Ordering::SeqCst) - before,
        1,
        "one decode per call"
    );
    let e = remote.count(Counted(700)).await.unwrap_err();
    assert!(e.is_access_denied(), "{e}");
    l.close().await;
}

async fn references_in_calls_that_do_not_run(link: Linker) {
    let world = server_world();
    let node = Node::new();
    let l = link(&world, &node).await;
    let hub: HubClient = l.client.lookup("hub").await.unwrap();
    let guarded: HubClient = l.client.lookup("hub/guarded").await.unwrap();
    let calc: CalcClient = l.client.lookup("calc").await.unwrap();
    let baseline = (l.client.tables(), l.server.tables());
    let cb: CallbackClient = node
        .expose(Pinger {
            hub: hub.clone(),
            me: OnceLock::new(),
        })
        .with_view("cb", CallbackInterface::view())
        .unwrap()
        .client("cb")
        .unwrap();
    let back_to_baseline = || {
        let (c, s) = (l.client.tables(), l.server.tables());
        c.exports == baseline.0.exports
            && s.imports == baseline.1.imports
            && c.questions == 0
            && s.answers == 0
    };

    // Refused by the view's filter: the arguments are dropped unread.
    let e = guarded.keep(cb.clone()).await.unwrap_err();
    assert!(e.is_access_denied(), "{e}");
    assert_eq!(
        calc.add(1, 1).await.unwrap(),
        2,
        "the connection still serves"
    );
    eventually("the refused call's reference is released", back_to_baseline).await;

    // Failed in the callee.
    let e = hub.refuse(cb.clone()).await.unwrap_err();
    assert_eq!(e.callee().map(String::as_str), Some("refused"));
    eventually("the failed call's reference is released", back_to_baseline).await;

    // Cancelled by the caller.
    let waited =
        tokio::time::timeout(Duration::from_millis(50), hub.hold(cb.clone(), 60_000)).await;
    assert!(waited.is_err());
    eventually(
        "the cancelled call's reference is released",
        back_to_baseline,
    )
    .await;

    // Past its deadline.
    let e = Context::new()
        .with_deadline(Instant::now() + Duration::from_millis(50))
        .scope(hub.hold(cb.clone(), 60_000))
        .await
        .unwrap_err();
    assert!(e.is_deadline_exceeded(), "{e}");
    eventually("the expired call's reference is released", back_to_baseline).await;

    assert_eq!(
        calc.add(2, 2).await.unwrap(),
        4,
        "and the connection still serves"
    );
    l.close().await;
}

async fn only_its_directory(link: LinkerWith) {
    let world = server_world();
    let node = Node::new();
    let guests = Directory::new();
    guests.publish("guest/calc", world.calc.view("narrow").unwrap());
    let l = link(
        &world,
        &node,
        Config::new().directory(guests),
        Config::new(),
    )
    .await;
    let calc: CalcClient = l.client.lookup("guest/calc").await.unwrap();
    assert_eq!(calc.add(1, 2).await.unwrap(), 3);
    for name in ["calc", "hub", "calc/checked"] {
        let e = l.client.lookup::<CalcClient>(name).await.unwrap_err();
        assert!(
            e.is_unknown_object(),
            "{name} is published node-wide only: {e}"
        );
    }
    // The node-wide directory itself still has them, for other connections.
    assert!(world.node.lookup_ref("calc").is_ok());
    l.close().await;
}

async fn swaps_reach_remote_callers(link: Linker) {
    let world = server_world();
    let node = Node::new();
    let l = link(&world, &node).await;
    let calc: CalcClient = l.client.lookup("calc/swap").await.unwrap();
    let object = world.calc.object();
    let kind = |c: &CalcClient| c.reference().describe().unwrap().kind_of("wait");

    // Sync: the caller waits for the method.
    assert_eq!(kind(&calc), Some(AbstractionKind::Sync));
    let waited = tokio::time::timeout(Duration::from_millis(50), calc.wait()).await;
    assert!(waited.is_err(), "a sync call waits at the gate");
    eventually("the cancelled wait leaves", || {
        object.waiting.load(Ordering::SeqCst) == 0
    })
    .await;

    // Sync → oneway: the very next call returns at once, though the method
    // still waits at the gate.
    world
        .calc
        .set_view(
            "swap",
            CalcInterface::view().method(CalcInterface::WAIT, Oneway),
        )
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), calc.wait())
        .await
        .expect("a oneway call does not wait")
        .unwrap();
    eventually("the oneway call runs at the callee", || {
        object.waiting.load(Ordering::SeqCst) == 1
    })
    .await;
    eventually("the caller learns the new view", || {
        kind(&calc) == Some(AbstractionKind::Oneway)
    })
    .await;
    object.gate.0.add_permits(1);
    eventually("it ran", || object.waiting.load(Ordering::SeqCst) == 0).await;

    // Oneway → sync: the owner's swap is announced, and the caller waits
    // again.
    world.calc.set_view("swap", CalcInterface::view()).unwrap();
    eventually("the caller learns the new view", || {
        kind(&calc) == Some(AbstractionKind::Sync)
    })
    .await;
    let waited = tokio::time::timeout(Duration::from_millis(50), calc.wait()).await;
    assert!(waited.is_err(), "sync again: the caller waits at the gate");
    l.close().await;
}

/// A node with two listeners, each with its own directory: a name
/// published on one cannot be looked up through the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_offers_only_its_own_names() {
    bounded(async {
        let world = server_world();
        let (members, guests) = (Directory::new(), Directory::new());
        members.publish("room/member", world.calc.view("plain").unwrap());
        guests.publish("room/guest", world.calc.view("narrow").unwrap());
        let over_tcp = tcp::serve(&world.node, "127.0.0.1:0", Config::new().directory(members))
            .await
            .unwrap();
        let over_ws = ws::serve(&world.node, "127.0.0.1:0", Config::new().directory(guests))
            .await
            .unwrap();
        let client = Node::new();
        let to_tcp = tcp::connect(&client, over_tcp.local_addr(), Config::new())
            .await
            .unwrap();
        let url = format!("ws://{}/", over_ws.local_addr());
        let to_ws = ws::connect(&client, &url, Config::new()).await.unwrap();

        let member: CalcClient = to_tcp.lookup("room/member").await.unwrap();
        assert_eq!(member.divide(6, 3).await.unwrap(), 2);
        let e = to_ws.lookup::<CalcClient>("room/member").await.unwrap_err();
        assert!(e.is_unknown_object(), "{e}");
        let guest: CalcClient = to_ws.lookup("room/guest").await.unwrap();
        assert!(guest.divide(6, 3).await.unwrap_err().is_unknown_method());
        let e = to_tcp.lookup::<CalcClient>("room/guest").await.unwrap_err();
        assert!(e.is_unknown_object(), "{e}");
        // Neither offers the node-wide names.
        let e = to_tcp.lookup::<CalcClient>("calc").await.unwrap_err();
        assert!(e.is_unknown_object(), "{e}");

        to_tcp.close().await;
        to_ws.close().await;
        over_tcp.close().await;
        over_ws.close().await;
    })
    .await
}

/// A peer that stops answering (a stopped process: the socket stays open,
/// nothing comes back): the keepalive notices, and a call pending on it
/// without a deadline fails with `disconnected` within the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_fails_pending_calls_within_the_idle_timeout() {
    use futures_util::{SinkExt, StreamExt};
    use tether::transports::session::{Session, SessionConfig};
    use tokio_util::codec::{Framed, LengthDelimitedCodec};

    bounded(async {
        let world = server_world();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bootstrap = world.calc.view("plain").unwrap();
        let silent = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let codec = LengthDelimitedCodec::builder()
                .little_endian()
                .length_field_length(4)
                .new_codec();
            let mut framed = Framed::new(stream, codec);
            // Says Hello, then reads everything and answers nothing.
            let mut session =
                Session::new(SessionConfig::default(), Some(bootstrap), Instant::now());
            while let Some(frame) = session.poll_transmit() {
                framed.send(frame).await.unwrap();
            }
            let mut frames = 0;
            while let Some(Ok(_)) = framed.next().await {
                frames += 1;
            }
            frames
        });
        let node = Node::new();
        let config = Config::new()
            .keepalive(Duration::from_millis(100))
            .idle_timeout(Duration::from_millis(400));
        let peer = tcp::connect(&node, addr, config).await.unwrap();
        peer.opened().await.unwrap();
        let e = peer.lookup::<CalcClient>("calc").await.unwrap_err();
        assert!(e.is_disconnected(), "{e}");
        let closed = peer.closed().await;
        assert!(closed.reason.contains("no sign of life"), "{closed:?}");
        // It sent the call, at least one Ping, and a Goodbye.
        assert!(silent.await.unwrap() >= 3);
    })
    .await
}

/// The carriers look alike: the same address forms for serve and connect,
/// and a connection that cannot be made fails the same way, as a Tether
/// `disconnected` error naming where.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carriers_take_the_same_addresses_and_fail_to_connect_alike() {
    bounded(async {
        let world = server_world();
        let client = Node::new();
        let over_tcp = tcp::serve(&world.node, "127.0.0.1:0", Config::new())
            .await
            .unwrap();
        let over_ws = ws::serve(&world.node, "127.0.0.1:0", Config::new())
            .await
            .unwrap();
        let dev = quic::Dev::localhost().unwrap();
        let over_quic = dev
            .serve(&world.node, "127.0.0.1:0", Config::new())
            .await
            .unwrap();
        let peers = [
            tcp::connect(&client, over_tcp.local_addr(), Config::new())
                .await
                .unwrap(),
            ws::connect(&client, over_ws.local_addr(), Config::new())
                .await
                .unwrap(),
            ws::connect(
                &client,
                format!("127.0.0.1:{}", over_ws.local_addr().port()),
                Config::new(),
            )
            .await
            .unwrap(),
            dev.connect(&client, over_quic.local_addr(), Config::new())
                .await
                .unwrap(),
        ];
        for peer in &peers {
            let calc: CalcClient = peer.lookup("calc").await.unwrap();
            assert_eq!(calc.add(1, 2).await.unwrap(), 3);
            peer.close().await;
        }
        for listener in [over_tcp, over_ws, over_quic] {
            listener.close().await;
        }

        // A port nobody listens on.
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let quick = || Config::new().idle_timeout(Duration::from_millis(500));
        let errors = [
            tcp::connect(&client, free, quick()).await.unwrap_err(),
            ws::connect(&client, free, quick()).await.unwrap_err(),
            dev.connect(&client, free, quick()).await.unwrap_err(),
        ];
        for e in errors {
            assert!(e.is_disconnected(), "{e}");
            assert!(e.message().contains("cannot connect to"), "{e}");
        }
    })
    .await
}
