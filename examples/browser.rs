//! A browser and a native node, each calling the other.
//!
//! `cargo run --example browser` builds nothing in JavaScript itself: it
//! serves the page in `transports/web/example/` and the compiled library
//! in `transports/web/dist/` (build it once with
//! `cd transports/web && npm ci && npm run build`), and a native node over
//! WebSocket. Open the printed URL: the page connects, calls the node's
//! counter, and passes the node a JavaScript object, which the node calls
//! back before its own call returns.
//!
//! The same node serves the library's browser tests
//! (`transports/web/test/browser.mjs` runs them in headless Chromium):
//! `--port 0` picks free ports, and the program ends when its standard
//! input closes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether::transports::frame::Credentials;
use tether::transports::{Config, ws};
use tether::{Context, Node, Principal, Schema};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A counter.
#[tether::interface]
pub trait Counter {
    /// Adds `n`; returns the new count.
    async fn add(&self, n: u64) -> u64;
    /// The count.
    async fn get(&self) -> u64;
}

/// What the page exports for the node to call back.
#[tether::interface]
pub trait Listener {
    /// Hears the `n`th notice; answers what it made of it.
    async fn notify(&self, n: u32) -> String;
}

/// A shape, to send an enum both ways.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Schema)]
pub enum Shape {
    /// Nothing.
    Empty,
    /// A circle of a radius.
    Circle(u32),
    /// A rectangle.
    Rect {
        /// Width.
        w: u32,
        /// Height.
        h: u32,
    },
}

/// A value of every kind a schema has, to send both ways.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Schema)]
pub struct Sample {
    /// A u64: a BigInt in JavaScript.
    pub id: u64,
    /// A negative number.
    pub delta: i32,
    /// A string.
    pub name: String,
    /// A sequence.
    pub tags: Vec<String>,
    /// Bytes: a `Uint8Array`.
    pub data: Vec<u8>,
    /// A map.
    pub scores: BTreeMap<String, i64>,
    /// An option.
    pub maybe: Option<f64>,
    /// An enum.
    pub shape: Shape,
    /// A tuple.
    pub pair: (bool, char),
}

/// Why `fail` failed: the callee's own error type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Schema)]
pub struct Oops {
    /// The code asked for.
    pub code: u32,
    /// What went wrong.
    pub reason: String,
}

/// Everything the browser tests exercise.
#[tether::interface]
pub trait Lab {
    /// Sends the sample back, its id incremented.
    async fn echo(&self, sample: Sample) -> Sample;
    /// Calls `listener` back `times` times before answering, and returns
    /// what it said.
    async fn visit(&self, listener: ListenerClient, times: u32) -> Vec<String>;
    /// Returns the reference it was given: a proxy comes home as itself.
    async fn round(&self, listener: ListenerClient) -> ListenerClient;
    /// Hands out a fresh counter each time (for release tests).
    async fn fresh(&self) -> Result<CounterClient, String>;
    /// Fails with the callee's own error.
    async fn fail(&self, code: u32) -> Result<u32, Oops>;
    /// Sleeps `ms` milliseconds, then answers it.
    async fn slow(&self, ms: u64) -> u64;
    /// How many `slow` calls are running.
    async fn running(&self) -> u32;
    /// Who calls: the connection's principal.
    async fn whoami(&self) -> Option<String>;
    /// How many exports the node's WebSocket connections hold, and how
    /// many references to the peers' objects.
    async fn tables(&self) -> (u64, u64);
    /// Keeps a note; the view makes it oneway.
    async fn note(&self, text: String);
    /// The notes kept.
    async fn notes(&self) -> Vec<String>;
}

#[derive(Default)]
struct Count(AtomicU64);

impl Counter for Count {
    async fn add(&self, n: u64) -> u64 {
        self.0.fetch_add(n, Ordering::SeqCst) + n
    }
    async fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The node's own listener, which the page can describe and copy.
struct Echo;

impl Listener for Echo {
    async fn notify(&self, n: u32) -> String {
        format!("native heard {n}")
    }
}

struct LabObject {
    node: Node,
    notes: std::sync::Mutex<Vec<String>>,
    slow_running: Arc<AtomicU32>,
    listener: Arc<OnceLock<tether::transports::Listener>>,
}

/// Decrements the running count however the call ends (a cancel drops it).
struct Running(Arc<AtomicU32>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Lab for LabObject {
    async fn echo(&self, mut sample: Sample) -> Sample {
        sample.id += 1;
        sample
    }

    async fn visit(&self, listener: ListenerClient, times: u32) -> Vec<String> {
        let mut heard = Vec::new();
        for n in 0..times {
            match listener.notify(n).await {
                Ok(text) => heard.push(text),
                Err(e) => heard.push(format!("error: {e}")),
            }
        }
        heard
    }

    async fn round(&self, listener: ListenerClient) -> ListenerClient {
        listener
    }

    async fn fresh(&self) -> Result<CounterClient, String> {
        let counter = self
            .node
            .expose(Count::default())
            .with_view("fresh", CounterInterface::view())
            .map_err(|e| e.to_string())?;
        counter.client("fresh").map_err(|e| e.to_string())
    }

    async fn fail(&self, code: u32) -> Result<u32, Oops> {
        Err(Oops {
            code,
            reason: format!("asked to fail with {code}"),
        })
    }

    async fn slow(&self, ms: u64) -> u64 {
        self.slow_running.fetch_add(1, Ordering::SeqCst);
        let _running = Running(Arc::clone(&self.slow_running));
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }

    async fn running(&self) -> u32 {
        self.slow_running.load(Ordering::SeqCst)
    }

    async fn whoami(&self) -> Option<String> {
        Context::current().and_then(|c| c.principal().map(|p| p.name().to_string()))
    }

    async fn note(&self, text: String) {
        if let Ok(mut notes) = self.notes.lock() {
            notes.push(text);
        }
    }

    async fn notes(&self) -> Vec<String> {
        self.notes.lock().map(|n| n.clone()).unwrap_or_default()
    }

    async fn tables(&self) -> (u64, u64) {
        let peers = self
            .listener
            .get()
            .map(tether::transports::Listener::peers)
            .unwrap_or_default();
        peers.iter().fold((0, 0), |(e, i), p| {
            let t = p.tables();
            (e + t.exports as u64, i + t.imports as u64)
        })
    }
}

/// Admits anonymous peers and `ada` with her secret; refuses other credentials.
fn authenticate(credentials: Option<&Credentials>) -> Result<Option<Principal>, String> {
    match credentials {
        None => Ok(None),
        Some(c) if c.principal == "ada" && c.secret == b"s3cret" => {
            Ok(Some(Principal::new("ada", ["staff"])))
        }
        Some(_) => Err("unknown principal or wrong secret".into()),
    }
}

/// The files the page needs: the example page, the test page, and the
/// compiled library, from `transports/web`.
fn web_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("transports/web")
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("map" | "json") => "application/json",
        Some("ts") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Serves files under `transports/web` for GET requests: the page and the
/// library. Only paths of plain names are served; nothing outside.
async fn serve_files(http: TcpListener) {
    let root = web_root();
    loop {
        let Ok((stream, _)) = http.accept().await else {
            continue;
        };
        let root = root.clone();
        tokio::spawn(async move {
            let mut stream = tokio::io::BufReader::new(stream);
            let mut line = String::new();
            let read =
                tokio::time::timeout(Duration::from_secs(10), stream.read_line(&mut line)).await;
            if !matches!(read, Ok(Ok(n)) if n > 0) {
                return;
            }
            // Skip the headers (bounded: at most 16 KiB).
            let mut headers = Vec::new();
            let mut limited = (&mut stream).take(16 * 1024);
            let mut buf = [0_u8; 1024];
            while !headers.ends_with(b"\r\n\r\n") {
                match tokio::time::timeout(Duration::from_secs(10), limited.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => headers.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/");
            let path = path.split('?').next().unwrap_or("/");
            let path = if path == "/" {
                "/example/index.html"
            } else {
                path
            };
            let safe = path.trim_start_matches('/').split('/').all(|part| {
                !part.is_empty()
                    && !part.starts_with('.')
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            });
            let file = root.join(path.trim_start_matches('/'));
            let (status, kind, body) = match (safe, tokio::fs::read(&file).await) {
                (true, Ok(body)) => ("200 OK", content_type(&file), body),
                _ => ("404 Not Found", "text/plain", b"not found".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let mut stream = stream.into_inner();
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init()
        .ok();
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = match args.iter().position(|a| a == "--port") {
        Some(i) => args
            .get(i + 1)
            .and_then(|p| p.parse().ok())
            .ok_or("--port takes a number")?,
        None => 8080,
    };

    let node = Node::new();
    let counter = node
        .expose(Count::default())
        .with_view("public", CounterInterface::view())?;
    node.publish("counter", counter.view("public")?);
    let echo = node
        .expose(Echo)
        .with_view("public", ListenerInterface::view())?;
    node.publish("echo-listener", echo.view("public")?);
    let listener_cell = Arc::new(OnceLock::new());
    let lab = node
        .expose(LabObject {
            node: node.clone(),
            notes: std::sync::Mutex::default(),
            slow_running: Arc::default(),
            listener: Arc::clone(&listener_cell),
        })
        .with_view(
            "lab",
            LabInterface::view().method(LabInterface::NOTE, tether::abstractions::Oneway),
        )?;
    node.publish("lab", lab.view("lab")?);

    let ws_listener = ws::serve(
        &node,
        "127.0.0.1:0",
        Config::new().authenticator(authenticate),
    )
    .await?;
    let ws_addr = ws_listener.local_addr();
    let _ = listener_cell.set(ws_listener);

    // A relay beside the node, so that two pages can reach each other.
    let relay = tether::transports::relay::Relay::serve(
        "127.0.0.1:0",
        Some(([127, 0, 0, 1], 0).into()),
        tether::transports::relay::RelayConfig::default(),
    )
    .await?;
    let relay_ws = relay
        .ws_addr()
        .ok_or("the relay has no WebSocket listener")?;

    let http = TcpListener::bind(("127.0.0.1", port)).await?;
    let http_addr = http.local_addr()?;
    tokio::spawn(serve_files(http));

    if !web_root().join("dist/index.js").exists() {
        eprintln!(
            "the library is not built yet: run `cd transports/web && npm ci && npm run build`"
        );
    }
    println!("serving http://{http_addr}/?ws=ws://{ws_addr}/");
    println!("relay ws://{relay_ws}/ tcp {}", relay.tcp_addr());
    println!("open it in a browser; the node's log follows (Ctrl-C or closing stdin stops it)");

    // Runs until stdin closes (the tests close it) or Ctrl-C.
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    tokio::select! {
        _ = async { while stdin.read_line(&mut line).await.map(|n| n > 0).unwrap_or(false) { line.clear(); } } => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    if let Some(listener) = listener_cell.get() {
        listener.close().await;
    }
    relay.close().await;
    Ok(())
}
