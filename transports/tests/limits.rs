//! What one peer can make a node hold is bounded: oneway calls in flight,
//! references per frame, transactions per connection. Each bound has a
//! clear error or a count, and the node keeps serving.
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tether::abstractions::Oneway;
use tether::transports::frame::{Tag, WireContext};
use tether::transports::session::{Answer, OutgoingRef};
use tether::transports::{Config, Listener, Peer, tcp};
use tether::{ErrorKind, Exposed, Node, Object, Ref, Value};

use support::{Raw, bounded, eventually};

#[tether::interface]
pub trait Gated {
    /// Waits at the gate (oneway in the server's view).
    async fn wait(&self);
    async fn ping(&self) -> u64;
    async fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    /// Fails with an error value of `size` bytes.
    async fn fail(&self, size: u64) -> Result<(), String>;
    /// Takes many references, and drops them.
    async fn many(&self, refs: Vec<GatedClient>) -> u64;
}

struct Gate {
    permits: tokio::sync::Semaphore,
    waiting: AtomicU64,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            permits: tokio::sync::Semaphore::new(0),
            waiting: AtomicU64::new(0),
        }
    }
}

impl Gated for Gate {
    async fn wait(&self) {
        struct Leave<'a>(&'a AtomicU64);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(&self.waiting);
        self.permits.acquire().await.unwrap().forget();
    }
    async fn ping(&self) -> u64 {
        1
    }
    async fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
    async fn fail(&self, size: u64) -> Result<(), String> {
        Err("x".repeat(size as usize))
    }
    async fn many(&self, refs: Vec<GatedClient>) -> u64 {
        refs.len() as u64
    }
}

struct Server {
    node: Node,
    gate: Exposed<Object<Gate>>,
    listener: Listener,
}

async fn server(config: Config) -> Server {
    let node = Node::new();
    let gate = node
        .expose(Gate::default())
        .with_view(
            "v",
            GatedInterface::view().method(GatedInterface::WAIT, Oneway),
        )
        .unwrap();
    node.publish("gate", gate.view("v").unwrap());
    let listener = tcp::serve(&node, "127.0.0.1:0", config).await.unwrap();
    Server {
        node,
        gate,
        listener,
    }
}

/// `n` references, each to a new object of `node`'s.
fn gates(node: &Node, n: usize) -> Vec<Ref> {
    (0..n)
        .map(|_| {
            node.expose(Gate::default())
                .with_view("v", GatedInterface::view())
                .unwrap()
                .view("v")
                .unwrap()
        })
        .collect()
}

async fn accepted(listener: &Listener) -> Peer {
    for _ in 0..500 {
        if let Some(p) = listener.peers().pop() {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no connection accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneway_calls_in_flight_are_bounded_and_end_with_their_connection() {
    bounded(async {
        let s = server(Config::new().max_oneway_in_flight(4)).await;
        let client = Node::new();
        let peer = tcp::connect(&client, s.listener.local_addr(), Config::new())
            .await
            .unwrap();
        let gate: GatedClient = peer.lookup("gate").await.unwrap();
        let there = accepted(&s.listener).await;
        // A flood of oneway calls to a method that does not finish.
        for _ in 0..200 {
            gate.wait().await.unwrap();
        }
        let object = s.gate.object();
        eventually("four run, the rest are refused and counted", || {
            let t = there.tables();
            t.oneways == 4 && t.refused_oneways == 196
        })
        .await;
        assert_eq!(object.waiting.load(Ordering::SeqCst), 4);
        // The connection still serves calls.
        assert_eq!(gate.ping().await.unwrap(), 1);
        // Closing the connection ends the oneway calls still running.
        peer.close().await;
        eventually("the running oneway calls are dropped", || {
            object.waiting.load(Ordering::SeqCst) == 0
        })
        .await;
        // And a oneway call that finishes frees its place.
        let peer = tcp::connect(&client, s.listener.local_addr(), Config::new())
            .await
            .unwrap();
        let gate: GatedClient = peer.lookup("gate").await.unwrap();
        gate.wait().await.unwrap();
        eventually("it waits", || object.waiting.load(Ordering::SeqCst) == 1).await;
        object.permits.add_permits(1);
        eventually("it finished", || object.waiting.load(Ordering::SeqCst) == 0).await;
        peer.close().await;
        s.listener.close().await;
        drop(s.node);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_with_too_many_references_is_refused_with_one_release() {
    bounded(async {
        let s = server(Config::new().max_refs_per_frame(100)).await;
        let mut raw = Raw::connect(s.listener.local_addr()).await;
        // 2,000 references, one call: each of an object of the raw peer's.
        let mine = Node::new();
        let refs = gates(&mine, 2_000);
        let gate_key = raw.lookup("gate").await.expect("the gate is published");
        let before = raw.seen.len();
        let id = raw.send(
            gate_key,
            "ping",
            Value::serializable(()),
            WireContext::default(),
            refs.iter().cloned().map(OutgoingRef::Export).collect(),
        );
        match raw.answer(id).await {
            Answer::Error(e) => {
                assert_eq!(e.kind(), ErrorKind::BadArguments, "{e}");
                assert!(e.message().contains("2000 references"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let releases = raw.seen[before..]
            .iter()
            .filter(|t| **t == Tag::RELEASE.0)
            .count();
        assert!(
            releases <= 2,
            "{releases} Release frames for 2,000 references"
        );
        // Wait for the Release: the exports are given back.
        raw.until_given_back(gate_key).await;
        assert_eq!(
            raw.session.tables().exports,
            0,
            "every reference given back"
        );
        // The connection still serves.
        let id = raw.send(
            gate_key,
            "ping",
            Value::serializable(()),
            WireContext::default(),
            Vec::new(),
        );
        assert!(matches!(raw.answer(id).await, Answer::Value(..)));
        s.listener.close().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_per_connection_are_bounded() {
    bounded(async {
        let s = server(Config::new().max_transactions(3)).await;
        let mut raw = Raw::connect(s.listener.local_addr()).await;
        let lookup = |raw: &mut Raw, tx: u64| {
            let context = WireContext {
                transaction: Some(tx),
                ..WireContext::default()
            };
            raw.send(
                raw.bootstrap,
                "lookup",
                Value::serializable(("gate".to_string(),)),
                context,
                Vec::new(),
            )
        };
        for tx in 1..=3 {
            let id = lookup(&mut raw, tx);
            assert!(matches!(raw.answer(id).await, Answer::Value(..)), "tx {tx}");
        }
        // The same transactions again are fine; a fourth is refused.
        let id = lookup(&mut raw, 2);
        assert!(matches!(raw.answer(id).await, Answer::Value(..)));
        let id = lookup(&mut raw, 4);
        match raw.answer(id).await {
            Answer::Error(e) => {
                assert_eq!(e.kind(), ErrorKind::Overloaded, "{e}");
                assert!(e.message().contains("3 transactions"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // Ending one makes room.
        let id = raw.send(
            raw.bootstrap,
            "abort",
            Value::serializable((1_u64,)),
            WireContext::default(),
            Vec::new(),
        );
        assert!(matches!(raw.answer(id).await, Answer::Value(..)));
        let id = lookup(&mut raw, 4);
        assert!(matches!(raw.answer(id).await, Answer::Value(..)));
        s.listener.close().await;
    })
    .await
}

/// A raw peer that has looked up the gate, with the server's end of its
/// connection.
async fn raw_peer(s: &Server) -> (Raw, u32, Peer) {
    let mut raw = Raw::connect(s.listener.local_addr()).await;
    let gate_key = raw.lookup("gate").await.expect("the gate is published");
    let there = s
        .listener
        .peers()
        .into_iter()
        .find(|p| p.peer_node() == Some(tether::NodeId(0xbad)) && !p.is_closed())
        .expect("the server's end");
    (raw, gate_key, there)
}

/// Asks for `n` echoes of `size` bytes, and reads none of them.
async fn flood_unread(raw: &mut Raw, gate_key: u32, n: usize, size: usize) {
    for _ in 0..n {
        raw.send(
            gate_key,
            "echo",
            Value::serializable((vec![7_u8; size],)),
            WireContext::default(),
            Vec::new(),
        );
        // The server may cut the connection while this still writes.
        if raw.try_flush().await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_reads_nothing_is_cut_off_after_the_write_timeout() {
    bounded(async {
        let s = server(Config::new().write_timeout(Duration::from_millis(300))).await;
        let healthy_node = Node::new();
        let healthy = tcp::connect(&healthy_node, s.listener.local_addr(), Config::new())
            .await
            .unwrap();
        let gate: GatedClient = healthy.lookup("gate").await.unwrap();
        let (mut raw, key, there) = raw_peer(&s).await;
        flood_unread(&mut raw, key, 64, 1 << 20).await;
        let reason = there.closed().await.reason;
        assert!(reason.contains("read nothing for 300ms"), "{reason}");
        assert_eq!(
            gate.echo(vec![1; 1000]).await.unwrap(),
            vec![1; 1000],
            "others are served"
        );
        healthy.close().await;
        s.listener.close().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_budget_cuts_off_the_peers_that_do_not_read() {
    bounded(async {
        let budget = 8 << 20;
        let s = server(Config::new().node_max_unsent(budget)).await;
        let healthy_node = Node::new();
        let healthy = tcp::connect(&healthy_node, s.listener.local_addr(), Config::new())
            .await
            .unwrap();
        let gate: GatedClient = healthy.lookup("gate").await.unwrap();
        // Four peers ask for 16 MiB each and read none of it.
        let mut cut = Vec::new();
        for _ in 0..4 {
            let (mut raw, key, there) = raw_peer(&s).await;
            flood_unread(&mut raw, key, 16, 1 << 20).await;
            cut.push((raw, there));
        }
        for (_, there) in &cut {
            let reason = there.closed().await.reason;
            assert!(
                reason.contains("budget of 8388608 bytes is spent"),
                "{reason}"
            );
        }
        let budget_now = s
            .node
            .extension::<tether::transports::session::NodeBudget>();
        eventually("what they left is let go", || budget_now.used() == 0).await;
        assert_eq!(
            gate.echo(vec![1; 1000]).await.unwrap(),
            vec![1; 1000],
            "others are served"
        );
        healthy.close().await;
        s.listener.close().await;
    })
    .await
}

/// The Closed event a raw peer sees next, skipping everything else.
async fn closed_event(raw: &mut Raw) -> String {
    loop {
        if let tether::transports::session::Event::Closed(c) = raw.next_event().await {
            return c.reason;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_limit_gets_a_goodbye_naming_it() {
    use tokio::io::AsyncWriteExt;
    bounded(async {
        let s = server(Config::new().max_frame(64 * 1024)).await;
        let mut raw = Raw::connect(s.listener.local_addr()).await;
        // A length prefix of 1 MiB, over the server's 64 KiB.
        raw.io
            .get_mut()
            .write_all(&(1u32 << 20).to_le_bytes())
            .await
            .unwrap();
        let reason = closed_event(&mut raw).await;
        assert!(
            reason.contains("goodbye") && reason.contains("frame size too big"),
            "{reason}"
        );
        s.listener.close().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_that_never_finishes_is_cut_off_at_the_idle_timeout() {
    use tokio::io::AsyncWriteExt;
    bounded(async {
        let config = Config::new()
            .keepalive(Duration::from_millis(100))
            .idle_timeout(Duration::from_millis(300));
        let s = server(config).await;
        let mut raw = Raw::connect(s.listener.local_addr()).await;
        // A length prefix and two bytes of a 100-byte frame, then silence.
        let stream = raw.io.get_mut();
        stream.write_all(&100u32.to_le_bytes()).await.unwrap();
        stream.write_all(&[0x03, 0x00]).await.unwrap();
        let reason = closed_event(&mut raw).await;
        assert!(reason.contains("no sign of life"), "{reason}");
        s.listener.close().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_text_message_gets_a_goodbye_naming_it() {
    use futures_util::{SinkExt, StreamExt};
    use tether::transports::frame::{Frame, Limits};
    use tokio_tungstenite::tungstenite::Message;
    bounded(async {
        let node = Node::new();
        let listener = tether::transports::ws::serve(&node, "127.0.0.1:0", Config::new())
            .await
            .unwrap();
        let url = format!("ws://{}/", listener.local_addr());
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        ws.send(Message::Text("hello".into())).await.unwrap();
        let mut goodbye = None;
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Binary(bytes) = message {
                if let Ok(Frame::Goodbye(g)) = Frame::decode(bytes, &Limits::default()) {
                    goodbye = Some(g.reason);
                }
            }
        }
        let reason = goodbye.expect("a Goodbye before the close");
        assert!(reason.contains("text message"), "{reason}");
        listener.close().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_too_large_for_the_caller_is_cut_to_fit_not_sent_whole() {
    bounded(async {
        let s = server(Config::new()).await;
        let client = Node::new();
        let peer = tcp::connect(
            &client,
            s.listener.local_addr(),
            Config::new().max_frame(64 * 1024),
        )
        .await
        .unwrap();
        let gate: GatedClient = peer.lookup("gate").await.unwrap();
        let e = gate.fail(1 << 20).await.unwrap_err();
        assert!(e.is_failed());
        assert!(e.callee().is_none(), "the value did not fit");
        assert!(e.message().len() <= 4096, "the message is cut");
        assert!(e.message().ends_with("too large to send)"));
        // A small one arrives whole, and the connection is still open.
        let e = gate.fail(10).await.unwrap_err();
        assert_eq!(e.callee().map(String::len), Some(10));
        assert_eq!(gate.ping().await.unwrap(), 1);
        peer.close().await;
        s.listener.close().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_references_costs_a_few_frames_not_one_each() {
    bounded(async {
        let s = server(Config::new()).await;
        let (mut raw, gate_key, _) = raw_peer(&s).await;
        let mine = Node::new();
        let refs = gates(&mine, 200);
        let before = raw.seen.len();
        // The arguments index the table: a sequence of 200 references.
        let indices: Vec<u32> = (0..200).collect();
        let id = raw.send(
            gate_key,
            "many",
            Value::serializable((indices,)),
            WireContext::default(),
            refs.iter().cloned().map(OutgoingRef::Export).collect(),
        );
        match raw.answer(id).await {
            Answer::Value(_, bytes) => assert_eq!(bytes[..], [200, 1]),
            other => panic!("{other:?}"),
        }
        // The server described all 200 in one question...
        let count =
            |raw: &Raw, tag: Tag| raw.seen[before..].iter().filter(|t| **t == tag.0).count();
        assert_eq!(count(&raw, Tag::DESCRIBE), 1);
        // ... and gives them all back in a few frames.
        raw.until_given_back(gate_key).await;
        assert_eq!(raw.session.tables().exports, 0);
        let releases = count(&raw, Tag::RELEASE);
        assert!(
            (1..=5).contains(&releases),
            "{releases} Release frames for 200 references"
        );
        s.listener.close().await;
    })
    .await
}

/// Another interface, to send where a `GatedClient` is expected.
#[tether::interface]
pub trait Other {
    async fn other(&self) -> u64;
}

struct O;
impl Other for O {
    async fn other(&self) -> u64 {
        2
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_of_the_wrong_interface_is_incompatible_and_named_plainly() {
    bounded(async {
        let s = server(Config::new()).await;
        let (mut raw, gate_key, _) = raw_peer(&s).await;
        let mine = Node::new();
        let other = mine
            .expose(O)
            .set_view("v", OtherInterface::view())
            .unwrap();
        let id = raw.send(
            gate_key,
            "many",
            Value::serializable((vec![0_u32],)),
            WireContext::default(),
            vec![OutgoingRef::Export(other)],
        );
        match raw.answer(id).await {
            Answer::Error(e) => {
                assert_eq!(e.kind(), ErrorKind::Incompatible, "{e}");
                assert!(e.message().contains("Gated"), "{e}");
                assert!(!e.message().contains("::"), "no Rust paths: {e}");
            }
            other => panic!("{other:?}"),
        }
        // Arguments of the wrong shape: bad arguments, named plainly too.
        let id = raw.send(
            gate_key,
            "echo",
            Value::serializable(("text".to_string(), 1_u8)),
            WireContext::default(),
            Vec::new(),
        );
        match raw.answer(id).await {
            Answer::Error(e) => {
                assert_eq!(e.kind(), ErrorKind::BadArguments, "{e}");
                assert!(!e.message().contains("::"), "no Rust paths: {e}");
            }
            other => panic!("{other:?}"),
        }
        s.listener.close().await;
    })
    .await
}

/// A connection that closes while the authenticator (the user's code, run
/// unlocked) still decides stays closed: the late decision does not
/// reopen it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_during_authentication_stays_closed() {
    bounded(async {
        let slow = |_: Option<&tether::transports::frame::Credentials>| {
            std::thread::sleep(Duration::from_millis(300));
            Ok(None)
        };
        let s = server(Config::new().authenticator(slow)).await;
        let client = Node::new();
        let peer = tcp::connect(&client, s.listener.local_addr(), Config::new())
            .await
            .unwrap();
        let there = accepted(&s.listener).await;
        // The connection is lost while the server still authenticates.
        tokio::time::sleep(Duration::from_millis(50)).await;
        there.abort();
        let closed = there.closed().await;
        assert!(!closed.by_us, "{closed:?}");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            there.is_closed(),
            "the late authentication did not reopen it"
        );
        assert!(there.bootstrap().await.is_err());
        peer.closed().await;
        s.listener.close().await;
    })
    .await
}
