//! Round trips per carrier, against raw tokio TCP floors and tarpc, in one
//! run. Client and server share one current-thread runtime (the stable
//! placement on a 2-core machine); figures are printed as a table with
//! ratios to the floors.
//!
//! The floors: an *inline* round trip (the client sends a frame the size
//! of Tether's `add` call and awaits the echo; the server echoes in its
//! read loop), for latency; and a *multiplexed* echo, for throughput: the
//! least an RPC system does (each request carries an id, the server
//! answers each in a task of its own through a writer task, the client
//! matches replies to waiting callers). tarpc 0.38 runs over TCP with
//! bincode, Nagle off like the others.
//!
//! `cargo bench -p tether-benches --bench carriers` (add `-- --quick` for a
//! short run, `-- --tcp-only`, `-- --ws-only` or `-- --quic-only` to run Tether over one
//! carrier alone, for a profiler; with `CALLS_ONLY=N` in the environment,
//! those make only `N` calls of `add`, 64 in flight, and print calls per
//! second; with `ECHOES_ONLY=N`, only `N` 64 KiB echoes, and print MB/s).
//!
//! Not a criterion bench: criterion reports means, and this bench reports
//! percentiles of one latency distribution and sustained throughput, which
//! it measures directly.

#![allow(missing_docs, clippy::unwrap_used)] // a benchmark: any failure should stop it loudly

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use tether::transports::{Config, Listener, Peer, quic, relay, tcp, ws};
use tether::{Node, View};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

#[tether::interface]
pub trait Bench {
    async fn add(&self, a: u64, b: u64) -> u64;
    async fn echo(&self, data: Vec<u8>) -> Vec<u8>;
}

struct Server;
impl Bench for Server {
    async fn add(&self, a: u64, b: u64) -> u64 {
        a + b
    }
    async fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
}

/// The sizes the figures are taken over.
struct Plan {
    sequential: usize,
    pipelined: usize,
    echoes: usize,
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    p50: Duration,
    p99: Duration,
    calls_per_s: f64,
    mb_per_s: f64,
}

const IN_FLIGHT: usize = 64;
const ECHO_IN_FLIGHT: usize = 8;
const ECHO: usize = 64 * 1024;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The figures of a system, given how to make its two calls: `add(i)`
/// (which checks that it got `i + 1`) and a 64 KiB `echo` (which checks
/// the length it got back).
async fn figures<A, AF, E, EF>(plan: &Plan, add: A, echo: E) -> Figures
where
    A: Fn(u64) -> AF,
    AF: std::future::Future<Output = ()>,
    E: Fn() -> EF,
    EF: std::future::Future<Output = ()>,
{
    for i in 0..200 {
        add(i).await;
    }
    let mut lat = Vec::with_capacity(plan.sequential);
    for i in 0..plan.sequential as u64 {
        let t = Instant::now();
        add(i).await;
        lat.push(t.elapsed());
    }
    lat.sort();
    let calls_per_s = windowed(plan.pipelined, IN_FLIGHT, &add).await;
    let echoes_per_s = windowed(plan.echoes, ECHO_IN_FLIGHT, |_| echo()).await;
    Figures {
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        calls_per_s,
        mb_per_s: echoes_per_s * (ECHO * 2) as f64 / 1e6,
    }
}

/// Calls per second, `total` calls made by `call`, `window` in flight.
async fn windowed<F: std::future::Future<Output = ()>>(
    total: usize,
    window: usize,
    call: impl Fn(u64) -> F,
) -> f64 {
    let t = Instant::now();
    let mut pending = FuturesUnordered::new();
    let mut sent = 0;
    while sent < total || !pending.is_empty() {
        while sent < total && pending.len() < window {
            pending.push(call(sent as u64));
            sent += 1;
        }
        pending.next().await.unwrap();
    }
    total as f64 / t.elapsed().as_secs_f64()
}

async fn tether_figures(client: BenchClient, plan: &Plan) -> Figures {
    let data = vec![0xa5_u8; ECHO];
    let (client, data) = (&client, &data);
    figures(
        plan,
        move |i| {
            let call = client.add(i, 1);
            async move { assert_eq!(call.await.unwrap(), i + 1) }
        },
        move || {
            let call = client.echo(data.clone());
            async move { assert_eq!(call.await.unwrap().len(), ECHO) }
        },
    )
    .await
}

/// The latency floor: a raw length-delimited TCP echo, inline, of frames
/// the size of Tether's `add` call.
async fn raw_figures(plan: &Plan) -> Figures {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut framed = Framed::new(stream, codec());
        while let Some(Ok(frame)) = framed.next().await {
            if framed.send(frame.freeze()).await.is_err() {
                break;
            }
        }
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut framed = Framed::new(stream, codec());
    // A Tether `add` call frame is 27 bytes, its return 10.
    let call = Bytes::from(vec![1_u8; 27]);
    let mut lat = Vec::with_capacity(plan.sequential);
    for _ in 0..200 {
        framed.send(call.clone()).await.unwrap();
        framed.next().await.unwrap().unwrap();
    }
    for _ in 0..plan.sequential {
        let t = Instant::now();
        framed.send(call.clone()).await.unwrap();
        framed.next().await.unwrap().unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    drop(framed);
    let _ = server.await;
    Figures {
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        // Not measured: the multiplexed floor is the throughput floor.
        calls_per_s: 0.0,
        mb_per_s: 0.0,
    }
}

/// The multiplexed floor: requests are `id: u64 LE` then the payload; the
/// server answers each in its own task; replies go through one writer
/// task per side.
async fn raw_multiplexed(plan: &Plan) -> Figures {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (mut sink, mut stream) = Framed::new(stream, codec()).split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
        let writer = tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                sink.feed(frame).await.unwrap();
                while let Ok(frame) = rx.try_recv() {
                    sink.feed(frame).await.unwrap();
                }
                SinkExt::<Bytes>::flush(&mut sink).await.unwrap();
            }
        });
        while let Some(Ok(frame)) = stream.next().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(frame.freeze());
            });
        }
        drop(tx);
        let _ = writer.await;
    });

    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sink, mut stream) = Framed::new(stream, codec()).split();
    let waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<Bytes>>>> = Arc::default();
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            sink.feed(frame).await.unwrap();
            while let Ok(frame) = rx.try_recv() {
                sink.feed(frame).await.unwrap();
            }
            SinkExt::<Bytes>::flush(&mut sink).await.unwrap();
        }
    });
    let reader = tokio::spawn({
        let waiting = Arc::clone(&waiting);
        async move {
            while let Some(Ok(frame)) = stream.next().await {
                let id = u64::from_le_bytes(frame[..8].try_into().unwrap());
                if let Some(reply) = waiting.lock().unwrap().remove(&id) {
                    let _ = reply.send(frame.freeze());
                }
            }
        }
    });
    let next_id = std::sync::atomic::AtomicU64::new(0);
    let call = |payload: usize| {
        let id = next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut frame = vec![0xa5_u8; 8 + payload];
        frame[..8].copy_from_slice(&id.to_le_bytes());
        let (reply, answer) = oneshot::channel();
        waiting.lock().unwrap().insert(id, reply);
        tx.send(Bytes::from(frame)).unwrap();
        async move { answer.await.unwrap().len() }
    };
    // The `add` call frame is 27 bytes; 8 of them here are the id.
    let f = figures(
        plan,
        |_| {
            let reply = call(19);
            async move { assert_eq!(reply.await, 27) }
        },
        || {
            let reply = call(ECHO);
            async move { assert_eq!(reply.await, ECHO + 8) }
        },
    )
    .await;
    drop(tx);
    let _ = writer.await;
    reader.abort();
    server.abort();
    f
}

#[tarpc::service]
trait TarpcBench {
    async fn add(a: u64, b: u64) -> u64;
    async fn echo(data: Vec<u8>) -> Vec<u8>;
}

#[derive(Clone)]
struct TarpcServer;

impl TarpcBench for TarpcServer {
    async fn add(self, _: tarpc::context::Context, a: u64, b: u64) -> u64 {
        a + b
    }
    async fn echo(self, _: tarpc::context::Context, data: Vec<u8>) -> Vec<u8> {
        data
    }
}

/// tarpc over TCP with bincode, each request served in its own task (as
/// its README does), Nagle off.
async fn tarpc_figures(plan: &Plan) -> Figures {
    use tarpc::server::Channel;
    use tarpc::tokio_serde::formats::Bincode;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let transport =
            tarpc::serde_transport::new(Framed::new(stream, codec()), Bincode::default());
        tarpc::server::BaseChannel::with_defaults(transport)
            .execute(TarpcServer.serve())
            .for_each(|response| async move {
                tokio::spawn(response);
            })
            .await;
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let transport = tarpc::serde_transport::new(Framed::new(stream, codec()), Bincode::default());
    let client = TarpcBenchClient::new(tarpc::client::Config::default(), transport).spawn();
    let ctx = tarpc::context::current;
    let data = vec![0xa5_u8; ECHO];
    let (c, data) = (&client, &data);
    let f = figures(
        plan,
        move |i| async move { assert_eq!(c.add(ctx(), i, 1).await.unwrap(), i + 1) },
        move || async move { assert_eq!(c.echo(ctx(), data.clone()).await.unwrap().len(), ECHO) },
    )
    .await;
    server.abort();
    f
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .little_endian()
        .length_field_length(4)
        .new_codec()
}

fn server_node() -> Node {
    let node = Node::new();
    let exposed = node
        .expose(Server)
        .with_view("bench", View::<BenchInterface>::new())
        .unwrap();
    node.publish("bench", exposed.view("bench").unwrap());
    node
}

async fn over(peer: Peer, plan: &Plan) -> Figures {
    let client: BenchClient = peer.lookup("bench").await.unwrap();
    let f = tether_figures(client.clone(), plan).await;
    drop(client);
    peer.close().await;
    f
}

/// A listener of `server`'s over TCP and a connection to it from `node`.
async fn tcp_peer(server: &Node, node: &Node) -> (Listener, Peer) {
    let l = tcp::serve(server, "127.0.0.1:0", Config::new())
        .await
        .unwrap();
    let peer = tcp::connect(node, l.local_addr(), Config::new())
        .await
        .unwrap();
    (l, peer)
}

/// The same over WebSocket.
async fn ws_peer(server: &Node, node: &Node) -> (Listener, Peer) {
    let l = ws::serve(server, "127.0.0.1:0", Config::new())
        .await
        .unwrap();
    let url = format!("ws://{}/", l.local_addr());
    let peer = ws::connect(node, &url, Config::new()).await.unwrap();
    (l, peer)
}

/// The same over QUIC, with a development certificate.
async fn quic_peer(server: &Node, node: &Node) -> (Listener, Peer) {
    let (cert, key) = quic::dev_certificate(&["localhost"]).unwrap();
    let tls = quic::server_config(vec![cert.clone()], key).unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let l = quic::serve(server, addr, tls, Config::new()).await.unwrap();
    let tls = quic::client_config(quic::trust(cert).unwrap()).unwrap();
    let peer = quic::connect(node, l.local_addr(), "localhost", tls, Config::new())
        .await
        .unwrap();
    (l, peer)
}

/// Tether over one carrier alone, for a profiler (`-- --tcp-only`,
/// `--ws-only`, `--quic-only`).
async fn carrier_only(carrier: &str, plan: Plan) {
    let (server, node) = (server_node(), Node::new());
    let (l, peer) = match carrier {
        "ws" => ws_peer(&server, &node).await,
        "quic" => quic_peer(&server, &node).await,
        _ => tcp_peer(&server, &node).await,
    };
    alone(peer, &plan).await;
    l.close().await;
}

/// One carrier's figures; with `CALLS_ONLY=N` (or `ECHOES_ONLY=N`) in the
/// environment, only that many calls of `add` (or 64 KiB echoes), and
/// their rate.
async fn alone(peer: Peer, plan: &Plan) {
    let only = |name: &str| std::env::var(name).ok().and_then(|n| n.parse().ok());
    if let Some(n) = only("CALLS_ONLY") {
        let client: BenchClient = peer.lookup("bench").await.unwrap();
        let c = &client;
        let r = windowed(n, IN_FLIGHT, move |i| {
            let call = c.add(i, 1);
            async move { assert_eq!(call.await.unwrap(), i + 1) }
        })
        .await;
        println!("{r}");
    } else if let Some(n) = only("ECHOES_ONLY") {
        let client: BenchClient = peer.lookup("bench").await.unwrap();
        let (c, data) = (&client, &vec![0xa5_u8; ECHO]);
        let r = windowed(n, ECHO_IN_FLIGHT, move |_| {
            let call = c.echo(data.clone());
            async move { assert_eq!(call.await.unwrap().len(), ECHO) }
        })
        .await;
        println!("{}", r * (ECHO * 2) as f64 / 1e6);
    } else {
        println!("{:?}", over(peer, plan).await);
    }
}

async fn run(plan: Plan) {
    let server = server_node();
    let node = Node::new();
    let raw = raw_figures(&plan).await;
    let mux = raw_multiplexed(&plan).await;
    let tarpc_f = tarpc_figures(&plan).await;

    let (l, peer) = tcp_peer(&server, &node).await;
    let tcp_f = over(peer, &plan).await;
    l.close().await;

    let (l, peer) = ws_peer(&server, &node).await;
    let ws_f = over(peer, &plan).await;
    l.close().await;

    let (l, peer) = quic_peer(&server, &node).await;
    let quic_f = over(peer, &plan).await;
    l.close().await;

    // Through a relay on the same runtime: one more hop each way.
    let relay = relay::Relay::serve("127.0.0.1:0", None, relay::RelayConfig::default())
        .await
        .unwrap();
    let registration = relay::serve_through(&server, relay.tcp_addr(), None, Config::new())
        .await
        .unwrap();
    let peer = relay::connect(
        &node,
        relay.tcp_addr(),
        registration.server_id(),
        Config::new(),
    )
    .await
    .unwrap();
    let relay_f = over(peer, &plan).await;
    drop(registration);
    relay.close().await;

    println!(
        "| system | `add` p50 | × raw inline | `add` p99 | calls/s, 64 in flight | % of raw multiplexed | 64 KiB echo MB/s, 8 in flight | % of raw multiplexed | p50 × Tether TCP |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let rows = [
        ("raw TCP, inline round trip (latency floor)", raw),
        ("raw TCP, multiplexed echo (throughput floor)", mux),
        ("tarpc 0.38, TCP + bincode", tarpc_f),
        ("Tether TCP", tcp_f),
        ("Tether WebSocket", ws_f),
        ("Tether QUIC", quic_f),
        ("Tether TCP through a relay", relay_f),
    ];
    for (i, (name, f)) in rows.into_iter().enumerate() {
        // The inline floor's throughput is of another kind (one frame
        // after another on one task): not a floor for the other columns.
        let (calls, mb) = if i == 0 {
            ("–".to_string(), "–".to_string())
        } else {
            (
                format!(
                    "{:.0} | {:.0}%",
                    f.calls_per_s,
                    100.0 * f.calls_per_s / mux.calls_per_s
                ),
                format!(
                    "{:.0} | {:.0}%",
                    f.mb_per_s,
                    100.0 * f.mb_per_s / mux.mb_per_s
                ),
            )
        };
        let (calls, mb) = if i == 0 {
            (format!("{calls} | –"), format!("{mb} | –"))
        } else {
            (calls, mb)
        };
        println!(
            "| {name} | {:.1} µs | {:.2}× | {:.1} µs | {calls} | {mb} | {:.2}× |",
            f.p50.as_secs_f64() * 1e6,
            f.p50.as_secs_f64() / raw.p50.as_secs_f64(),
            f.p99.as_secs_f64() * 1e6,
            f.p50.as_secs_f64() / tcp_f.p50.as_secs_f64(),
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `--quick` shortens the run.
    let quick = std::env::args().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            sequential: 500,
            pipelined: 2_000,
            echoes: 200,
        }
    } else {
        Plan {
            sequential: 20_000,
            pipelined: 100_000,
            echoes: 4_000,
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let only = ["tcp", "ws", "quic"]
        .into_iter()
        .find(|c| std::env::args().any(|a| a == format!("--{c}-only")));
    if let Some(carrier) = only {
        runtime.block_on(carrier_only(carrier, plan));
    } else {
        runtime.block_on(run(plan));
    }
}
