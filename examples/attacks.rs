//! What one peer can make a node hold, measured: each attack of issue 10
//! against a real server process, with a healthy client calling all along.
//!
//! `cargo run --release --example attacks` runs them at full size (about
//! two minutes: two attacks wait out the 30 s defaults);
//! `cargo run --example attacks -- --small` runs them small and with short
//! timeouts, as CI does. It prints one line per attack and fails if the
//! healthy client saw a failure or a bound did not hold.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tether::abstractions::Oneway;
use tether::transports::frame::{Tag, WireContext};
use tether::transports::session::{Answer, Event, OutgoingRef};
use tether::transports::{Config, Listener, tcp};
use tether::{Context, Node, Ref, Value};
use tokio::io::AsyncWriteExt;

#[path = "../transports/tests/support/mod.rs"]
mod support;
use support::Raw;

/// The server's object: a gate that holds whoever waits at it.
#[tether::interface]
pub trait Gated {
    /// Waits at the gate (oneway in the published view).
    async fn wait(&self);
    /// Waits `ms`.
    async fn hold(&self, ms: u64) -> u64;
    /// Answers at once.
    async fn ping(&self) -> u64;
    /// Sends `data` back.
    async fn echo(&self, data: Vec<u8>) -> Vec<u8>;
}

/// What the server reports about itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize, tether::Schema)]
pub struct Stats {
    rss_kib: u64,
    connections: u64,
    oneways: u64,
    refused_oneways: u64,
    unsent: u64,
}

/// The server's view of itself, for the attacker to measure.
#[tether::interface]
pub trait Probe {
    /// What the server holds now.
    async fn stats(&self) -> Stats;
}

struct Gate {
    waiting: AtomicU64,
    never: tokio::sync::Semaphore,
}

impl Gated for Gate {
    async fn wait(&self) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _ = self.never.acquire().await;
    }
    async fn hold(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
    async fn ping(&self) -> u64 {
        1
    }
    async fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
}

struct Prober {
    node: Node,
    listener: OnceLock<Listener>,
}

impl Probe for Prober {
    async fn stats(&self) -> Stats {
        let mut stats = Stats {
            rss_kib: rss_kib(std::process::id()),
            unsent: self
                .node
                .extension::<tether::transports::session::NodeBudget>()
                .used() as u64,
            ..Stats::default()
        };
        for peer in self.listener.get().map(Listener::peers).unwrap_or_default() {
            let t = peer.tables();
            stats.connections += 1;
            stats.oneways += t.oneways as u64;
            stats.refused_oneways += t.refused_oneways;
        }
        stats
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

async fn server(small: bool) -> Result<(), Failure> {
    let node = Node::new();
    let gate = node
        .expose(Gate {
            waiting: AtomicU64::new(0),
            never: tokio::sync::Semaphore::new(0),
        })
        .with_view(
            "v",
            GatedInterface::view().method(GatedInterface::WAIT, Oneway),
        )?;
    node.publish("gate", gate.view("v")?);
    let prober = node.expose(Prober {
        node: node.clone(),
        listener: OnceLock::new(),
    });
    let prober = prober.with_view("v", ProbeInterface::view())?;
    node.publish("probe", prober.view("v")?);
    let mut config = Config::new();
    if small {
        config = config
            .keepalive(Duration::from_millis(300))
            .idle_timeout(Duration::from_secs(1))
            .write_timeout(Duration::from_secs(1));
    }
    let listener = tcp::serve(&node, "127.0.0.1:0", config).await?;
    println!("listening {}", listener.local_addr());
    let _ = prober.object().listener.set(listener);
    // Serve until the parent closes our stdin.
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
    Ok(())
}

/// A server process, and its address.
fn spawn_server(small: bool) -> Result<(Child, std::net::SocketAddr), Failure> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("server");
    if small {
        command.arg("--small");
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .ok_or_else(|| format!("unexpected server output {line:?}"))?
        .parse()?;
    Ok((child, addr))
}

/// The healthy client: calls every 5 ms, and counts failures and the
/// slowest call.
struct Healthy {
    calls: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    worst_us: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Healthy {
    fn start(gate: GatedClient) -> Healthy {
        let (calls, failures, worst_us) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let counters = (calls.clone(), failures.clone(), worst_us.clone());
        let task = tokio::spawn(async move {
            loop {
                let started = Instant::now();
                let ok = Context::new()
                    .with_deadline(started + Duration::from_secs(5))
                    .scope(gate.ping())
                    .await
                    .is_ok();
                let took = started.elapsed().as_micros() as u64;
                counters.0.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    counters.1.fetch_add(1, Ordering::Relaxed);
                }
                counters.2.fetch_max(took, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Healthy {
            calls,
            failures,
            worst_us,
            task,
        }
    }
    /// The slowest call since the last look, and resets it.
    fn worst_ms(&self) -> f64 {
        self.worst_us.swap(0, Ordering::Relaxed) as f64 / 1000.0
    }
}

async fn gate_key(raw: &mut Raw) -> Result<u32, Failure> {
    raw.lookup("gate")
        .await
        .ok_or_else(|| "lookup gave no reference".into())
}

async fn client(small: bool) -> Result<(), Failure> {
    let (mut child, addr) = spawn_server(small)?;
    let pid = child.id();
    let node = Node::new();
    let healthy_peer = tcp::connect(&node, addr, Config::new()).await?;
    let probe: ProbeClient = healthy_peer.lookup("probe").await?;
    let healthy = Healthy::start(healthy_peer.lookup("gate").await?);
    let stats = || async { probe.stats().await };
    let mut bounds_held = true;
    let mut check = |what: &str, ok: bool| {
        if !ok {
            bounds_held = false;
            println!("  BOUND DID NOT HOLD: {what}");
        }
    };
    let before = stats().await?;
    println!("server process {pid}: RSS {} KiB at rest", before.rss_kib);

    // 1. A flood of oneway calls to a method that never finishes.
    let n: u64 = if small { 20_000 } else { 400_000 };
    let flood = tcp::connect(&node, addr, Config::new()).await?;
    let gate: GatedClient = flood.lookup("gate").await?;
    let started = Instant::now();
    for _ in 0..n {
        gate.wait().await?;
    }
    let mut s = stats().await?;
    for _ in 0..500 {
        if s.oneways + s.refused_oneways >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        s = stats().await?;
    }
    println!(
        "1. {n} oneway calls to a method that never ends: {} run, {} refused and counted, RSS {} KiB (+{}), {:.1} s; healthy client's slowest call {:.1} ms",
        s.oneways,
        s.refused_oneways,
        s.rss_kib,
        s.rss_kib.saturating_sub(before.rss_kib),
        started.elapsed().as_secs_f64(),
        healthy.worst_ms()
    );
    check("oneway calls in flight", s.oneways <= 1024);
    flood.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = stats().await?;
    println!(
        "   after the connection closed: {} oneway calls run",
        s.oneways
    );
    check("oneway calls end with their connection", s.oneways == 0);

    // 2. Four connections ask for replies and read none of them.
    let mb: usize = if small { 16 } else { 56 };
    let started = Instant::now();
    let mut raws = Vec::new();
    for _ in 0..4 {
        let mut raw = Raw::connect(addr).await;
        let key = gate_key(&mut raw).await?;
        for _ in 0..mb {
            raw.send(
                key,
                "echo",
                Value::serializable((vec![7_u8; 1 << 20],)),
                WireContext::default(),
                Vec::new(),
            );
            if raw.try_flush().await.is_err() {
                break;
            }
        }
        raws.push(raw);
    }
    let peak = stats().await?;
    let mut s = peak.clone();
    // Only the healthy client's connection is left once all are cut off.
    for _ in 0..1000 {
        if s.connections <= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        s = stats().await?;
    }
    println!(
        "2. 4 peers leave {mb} MiB of replies each unread: {} KiB held at most (RSS {} KiB), all cut off after {:.1} s, then {} KiB held; healthy client's slowest call {:.1} ms",
        peak.unsent / 1024,
        peak.rss_kib,
        started.elapsed().as_secs_f64(),
        s.unsent / 1024,
        healthy.worst_ms()
    );
    check(
        "unread peers are cut off",
        s.connections <= 1 && s.unsent < (1 << 20),
    );
    drop(raws);

    // 3. One call carrying 100,000 references.
    let refs_n = if small { 10_000 } else { 100_000 };
    let mut raw = Raw::connect(addr).await;
    let key = gate_key(&mut raw).await?;
    let mine = Node::new();
    let mut refs: Vec<Ref> = Vec::with_capacity(refs_n);
    for _ in 0..refs_n {
        let exposed = mine.expose(Gate {
            waiting: AtomicU64::new(0),
            never: tokio::sync::Semaphore::new(0),
        });
        refs.push(exposed.set_view("v", GatedInterface::view())?);
    }
    let seen = raw.seen.len();
    let started = Instant::now();
    let indices: Vec<u32> = (0..refs_n as u32).collect();
    let id = raw.send(
        key,
        "ping",
        Value::serializable((indices,)),
        WireContext::default(),
        refs.into_iter().map(OutgoingRef::Export).collect(),
    );
    let answer = raw.answer(id).await;
    for _ in 0..200 {
        if raw.session.tables().exports == 0 {
            break;
        }
        let id = raw.send(
            key,
            "ping",
            Value::serializable(()),
            WireContext::default(),
            Vec::new(),
        );
        raw.answer(id).await;
    }
    let frames = |tag: Tag| raw.seen[seen..].iter().filter(|t| **t == tag.0).count();
    println!(
        "3. one call with {refs_n} references: answered {}, {} Describe and {} Release frames back, {:.2} s; healthy client's slowest call {:.1} ms",
        match &answer {
            Answer::Error(e) => format!("{:?} ({})", e.kind(), e.message()),
            _ => "ok".into(),
        },
        frames(Tag::DESCRIBE),
        frames(Tag::RELEASE),
        started.elapsed().as_secs_f64(),
        healthy.worst_ms()
    );
    check(
        "references per frame",
        frames(Tag::RELEASE) <= 2 && frames(Tag::DESCRIBE) == 0,
    );

    // 4. Calls that each bring a new transaction.
    let txs: u64 = if small { 5_000 } else { 100_000 };
    let started = Instant::now();
    let mut refused = 0;
    for chunk in (1..=txs).collect::<Vec<_>>().chunks(1000) {
        let ids: Vec<u64> = chunk
            .iter()
            .map(|&tx| {
                let context = WireContext {
                    transaction: Some(tx),
                    ..WireContext::default()
                };
                raw.send(key, "ping", Value::serializable(()), context, Vec::new())
            })
            .collect();
        let mut left: std::collections::HashSet<u64> = ids.into_iter().collect();
        while !left.is_empty() {
            if let Event::Answer(id, answer) = raw.next_event().await {
                if left.remove(&id) {
                    if let Answer::Error(e) = answer {
                        refused += u64::from(e.is_overloaded());
                    }
                }
            }
        }
    }
    let s = stats().await?;
    println!(
        "4. {txs} calls, each with a new transaction: {} began, {refused} refused (overloaded), RSS {} KiB, {:.1} s; healthy client's slowest call {:.1} ms",
        txs - refused,
        s.rss_kib,
        started.elapsed().as_secs_f64(),
        healthy.worst_ms()
    );
    check("transactions per connection", txs - refused <= 1024);
    drop(raw);

    // 5. A length prefix and two bytes, then silence.
    let mut raw = Raw::connect(addr).await;
    let started = Instant::now();
    raw.io.get_mut().write_all(&100u32.to_le_bytes()).await?;
    raw.io.get_mut().write_all(&[3, 0]).await?;
    let reason = loop {
        if let Event::Closed(c) = raw.next_event().await {
            break c.reason;
        }
    };
    println!(
        "5. a frame begun and never finished: cut off after {:.1} s ({reason})",
        started.elapsed().as_secs_f64()
    );
    check("unfinished frames", reason.contains("no sign of life"));

    // 6. A server process stopped (SIGSTOP) with a call pending, no deadline.
    let (mut stopped, stopped_addr) = spawn_server(small)?;
    let config = if small {
        Config::new()
            .keepalive(Duration::from_millis(300))
            .idle_timeout(Duration::from_secs(1))
    } else {
        Config::new()
    };
    let to_stopped = tcp::connect(&node, stopped_addr, config).await?;
    let gate: GatedClient = to_stopped.lookup("gate").await?;
    let pending = tokio::spawn(async move { gate.hold(3_600_000).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    Command::new("kill")
        .args(["-STOP", &stopped.id().to_string()])
        .status()?;
    let started = Instant::now();
    let outcome = pending.await?;
    println!(
        "6. the server process stopped with a call pending and no deadline: the call failed after {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        match &outcome {
            Ok(_) => "it returned".to_string(),
            Err(e) => format!("{:?}", e.kind()),
        }
    );
    check("a silent peer", outcome.is_err_and(|e| e.is_disconnected()));
    Command::new("kill")
        .args(["-CONT", &stopped.id().to_string()])
        .status()?;
    drop(stopped.stdin.take());
    stopped.wait()?;

    healthy.task.abort();
    let (calls, failures) = (
        healthy.calls.load(Ordering::Relaxed),
        healthy.failures.load(Ordering::Relaxed),
    );
    println!("healthy client: {calls} calls, {failures} failed");
    healthy_peer.close().await;
    drop(child.stdin.take());
    child.wait()?;
    if failures > 0 || !bounds_held {
        return Err("a bound did not hold, or the healthy client saw a failure".into());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let small = args.iter().any(|a| a == "--small");
    if args.first().map(String::as_str) == Some("server") {
        server(small).await
    } else {
        client(small).await
    }
}
