//! Two processes, two carriers, one object with two views.
//!
//! `cargo run --example remote` starts a server process (this program with
//! the argument `server`), then acts as the client in this process:
//!
//! * the server exposes a `Room` with a `member` view (everything, logged)
//!   published in the TCP listener's directory, and a `guest` view (read and
//!   listen only) published in the WebSocket listener's: each listener
//!   offers its own names, so a WebSocket client cannot even find the
//!   member view;
//! * the client calls through both, is refused `post` as a guest (remote
//!   calls fail visibly), and passes a callback object by reference: the
//!   server calls it back for every message before its own call returns.
//!
//! Run the halves yourself with `cargo run --example remote -- server` and
//! `cargo run --example remote -- client <tcp address> <ws url>`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use tether::filters::LoggingLayer;
use tether::transports::{Config, tcp, ws};
use tether::{Directory, Node, View};

/// A chat room.
#[tether::interface]
pub trait Room {
    /// Posts a message; returns how many there are.
    async fn post(&self, text: String) -> u64;
    /// Every message so far.
    async fn history(&self) -> Vec<String>;
    /// Replays every message to `listener`, then returns how many it heard.
    async fn replay(&self, listener: ListenerClient) -> Result<u64, String>;
}

/// Hears messages: the client's callback object.
#[tether::interface]
pub trait Listener {
    /// One message.
    async fn heard(&self, text: String);
}

#[derive(Default)]
struct ChatRoom(Mutex<Vec<String>>);

impl Room for ChatRoom {
    async fn post(&self, text: String) -> u64 {
        let mut messages = self.0.lock().unwrap_or_else(|p| p.into_inner());
        messages.push(text);
        messages.len() as u64
    }
    async fn history(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    async fn replay(&self, listener: ListenerClient) -> Result<u64, String> {
        let messages = self.history().await;
        for m in &messages {
            // A call back into the caller's process, before this call answers.
            listener.heard(m.clone()).await.map_err(|e| e.to_string())?;
        }
        Ok(messages.len() as u64)
    }
}

struct Printer(Mutex<Vec<String>>);

impl Listener for Printer {
    async fn heard(&self, text: String) {
        println!("client: the server called back with {text:?}");
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(text);
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

async fn server() -> Result<(), Failure> {
    // The member view's logging filter prints here (stderr: the parent
    // reads this process's stdout for its address).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .try_init()
        .ok();
    let node = Node::new();
    let room = node
        .expose(ChatRoom::default())
        .with_view(
            "member",
            View::<RoomInterface>::new().layer(LoggingLayer::new()),
        )?
        .with_view(
            "guest",
            RoomInterface::view().only([RoomInterface::HISTORY, RoomInterface::REPLAY]),
        )?;
    // Each listener offers its own directory of names.
    let (members, guests) = (Directory::new(), Directory::new());
    members.publish("room/member", room.view("member")?);
    guests.publish("room/guest", room.view("guest")?);
    let tcp = tcp::serve(&node, "127.0.0.1:0", Config::new().directory(members)).await?;
    let ws = ws::serve(&node, "127.0.0.1:0", Config::new().directory(guests)).await?;
    // The parent reads this line to find us.
    println!(
        "listening tcp={} ws=ws://{}/",
        tcp.local_addr(),
        ws.local_addr()
    );
    // Serve until the parent closes our stdin (or goes away).
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
    tcp.close().await;
    ws.close().await;
    Ok(())
}

async fn client(tcp_addr: &str, ws_url: &str) -> Result<(), Failure> {
    let node = Node::new();
    let over_tcp = tcp::connect(&node, tcp_addr, Config::new()).await?;
    let over_ws = ws::connect(&node, ws_url, Config::new()).await?;

    let member: RoomClient = over_tcp.lookup("room/member").await?;
    member.post("hello from the client".into()).await?;
    let count = member.post("second message".into()).await?;
    println!("client: posted over TCP as a member; the room has {count} messages");

    match over_ws.lookup::<RoomClient>("room/member").await {
        Err(e) if e.is_unknown_object() => {
            println!("client: the member view is not published over WebSocket: {e}");
        }
        other => return Err(format!("found the member view over WebSocket: {other:?}").into()),
    }
    let guest: RoomClient = over_ws.lookup("room/guest").await?;
    println!(
        "client: history over WebSocket: {:?}",
        guest.history().await?
    );
    match guest.post("sneaky".into()).await {
        Err(refused) if refused.is_unknown_method() => {
            println!("client: a guest may not post: {refused}");
        }
        other => return Err(format!("a guest posted: {other:?}").into()),
    }

    let printer = node
        .expose(Printer(Mutex::new(Vec::new())))
        .with_view("listener", ListenerInterface::view())?;
    let heard = guest.replay(printer.client("listener")?).await?;
    let calls = printer
        .object()
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .len();
    println!("client: replay returned {heard}, after {calls} calls back into this process");
    assert_eq!((heard, calls), (2, 2));

    over_tcp.close().await;
    over_ws.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["server"] => server().await,
        ["client", tcp_addr, ws_url] => client(tcp_addr, ws_url).await,
        [] => {
            let mut child = Command::new(std::env::current_exe()?)
                .arg("server")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line)?;
            let (tcp_addr, ws_url) = line
                .trim()
                .strip_prefix("listening tcp=")
                .and_then(|rest| rest.split_once(" ws="))
                .ok_or_else(|| format!("unexpected server output {line:?}"))?;
            println!("server process {} at {tcp_addr} and {ws_url}", child.id());
            let outcome = client(tcp_addr, ws_url).await;
            drop(child.stdin.take()); // tells the server to stop
            child.wait()?;
            outcome
        }
        _ => Err("usage: remote [server | client <tcp address> <ws url>]".into()),
    }
}
