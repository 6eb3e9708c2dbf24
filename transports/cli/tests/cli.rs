//! The `tether` command end to end, against live nodes on loopback: it is
//! run as a process, as a person runs it.

#![allow(missing_docs, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether::filters::AccessLayer;
use tether::introspect::Introspection;
use tether::transports::frame::Credentials;
use tether::transports::{Config, quic, relay, tcp, ws};
use tether::{Node, Principal, Schema};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Schema)]
pub enum Shape {
    Empty,
    Circle(u32),
    Rect { w: u32, h: u32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Schema)]
pub struct Order {
    pub item: String,
    pub count: u16,
    pub notes: Option<String>,
    pub tags: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Schema)]
pub struct SoldOut {
    pub item: String,
}

#[tether::interface]
pub trait Shop {
    async fn add(&self, a: u64, b: u64) -> u64;
    async fn area(&self, shape: Shape) -> u64;
    async fn order(&self, order: Order) -> Result<Order, SoldOut>;
    async fn note(&self, text: String);
    async fn secret(&self) -> String;
}

struct Store;

impl Shop for Store {
    async fn add(&self, a: u64, b: u64) -> u64 {
        a + b
    }
    async fn area(&self, shape: Shape) -> u64 {
        match shape {
            Shape::Empty => 0,
            Shape::Circle(r) => 3 * u64::from(r) * u64::from(r),
            Shape::Rect { w, h } => u64::from(w) * u64::from(h),
        }
    }
    async fn order(&self, mut order: Order) -> Result<Order, SoldOut> {
        if order.item == "unicorn" {
            return Err(SoldOut { item: order.item });
        }
        order.count *= 2;
        Ok(order)
    }
    async fn note(&self, _text: String) {}
    async fn secret(&self) -> String {
        "hidden".into()
    }
}

fn authenticate(c: Option<&Credentials>) -> Result<Option<Principal>, String> {
    match c {
        None => Ok(None),
        Some(c) if c.principal == "root" && c.secret == b"s3cret" => {
            Ok(Some(Principal::new("root", ["admin"])))
        }
        Some(_) => Err("wrong secret".into()),
    }
}

fn shop_node() -> Node {
    let node = Node::new();
    let shop = node
        .expose(Store)
        .with_view(
            "public",
            ShopInterface::view()
                .method(ShopInterface::NOTE, tether::abstractions::Oneway)
                .only([
                    ShopInterface::ADD,
                    ShopInterface::AREA,
                    ShopInterface::ORDER,
                    ShopInterface::NOTE,
                ]),
        )
        .unwrap()
        .with_view(
            "guarded",
            ShopInterface::view().layer(AccessLayer::allow_role("admin")),
        )
        .unwrap();
    node.publish("shop", shop.view("public").unwrap());
    node.publish("vault", shop.view("guarded").unwrap());
    node
}

/// Runs `tether ARGS` and returns its output (bounded: 60 s).
async fn tether(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let run = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tether"))
            .args(&args)
            .env("RUST_LOG", "error")
            .output()
            .unwrap()
    });
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("tether took more than 60 s")
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_shows_names_views_methods_and_schemas() {
    let node = shop_node();
    let listener = tcp::serve(&node, "127.0.0.1:0", Config::new())
        .await
        .unwrap();
    let out = tether(&["inspect", &format!("tcp://{}", listener.local_addr())]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("2 names"), "{text}");
    assert!(text.contains("shop: Shop (fingerprint"), "{text}");
    assert!(text.contains("add(a: u64, b: u64) -> u64"), "{text}");
    assert!(
        text.contains("area(shape: Empty | Circle(u32) | Rect { w: u32, h: u32 }) -> u64"),
        "{text}"
    );
    assert!(
        text.contains("order(order: { item: String, count: u16, notes: Option<String>, tags: {String: i64} }) -> { item: String, count: u16, notes: Option<String>, tags: {String: i64} } ! { item: String }"),
        "{text}"
    );
    assert!(
        text.contains("note(text: String) -> ()") && text.contains("oneway"),
        "{text}"
    );
    // The public view hides `secret`; the guarded one shows it.
    let shop_part = text.split("vault:").next().unwrap();
    assert!(!shop_part.contains("secret"), "{text}");
    assert!(text.contains("vault: Shop"), "{text}");
    listener.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_converts_json_through_the_schema_both_ways() {
    let node = shop_node();
    let listener = ws::serve(&node, "127.0.0.1:0", Config::new())
        .await
        .unwrap();
    let url = format!("ws://{}/", listener.local_addr());

    let out = tether(&["call", &url, "shop", "add", "[2, 40]"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "42");

    let out = tether(&[
        "call",
        &url,
        "shop",
        "area",
        r#"[{"Rect": {"w": 3, "h": 4}}]"#,
    ])
    .await;
    assert_eq!(stdout(&out).trim(), "12", "{}", stderr(&out));

    let order = r#"[{"item": "tea", "count": 2, "notes": null, "tags": {"green": -1}}]"#;
    let out = tether(&["call", &url, "shop", "order", order]).await;
    let back: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(back["count"], 4);
    assert_eq!(back["tags"]["green"], -1);

    // The callee's typed error, with its kind, as JSON; exit status 1.
    let unicorn = r#"[{"item": "unicorn", "count": 1, "tags": {}}]"#;
    let out = tether(&["call", &url, "shop", "order", unicorn]).await;
    assert!(!out.status.success());
    let err: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(err["error"], "failed");
    assert_eq!(err["callee"]["item"], "unicorn");

    // Clear errors for what the command line gets wrong.
    for (args, message) in [
        (
            vec!["call", &url, "shop", "add", "[1]"],
            "bad arguments: add takes 2",
        ),
        (
            vec!["call", &url, "shop", "add", r#"[1, "x"]"#],
            "bad arguments: b: expected a u64",
        ),
        (
            vec!["call", &url, "shop", "secret", "[]"],
            "unknown method: shop (Shop) offers add, area, order, note",
        ),
        (vec!["call", &url, "nowhere", "add", "[]"], "unknown object"),
        (
            vec!["call", &url, "vault", "add", "[1, 2]"],
            "access denied",
        ),
        (
            vec!["call", "tcp://127.0.0.1:9", "shop", "add", "[]"],
            "disconnected: cannot connect",
        ),
        (
            vec!["call", &url, "shop", "add", "not json"],
            "the arguments are not JSON",
        ),
    ] {
        let out = tether(&args).await;
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    listener.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_needs_the_admin_credential() {
    let node = shop_node();
    let listener = tcp::serve(
        &node,
        "127.0.0.1:0",
        Config::new().authenticator(authenticate),
    )
    .await
    .unwrap();
    let introspection = Introspection::new(&node);
    introspection.watch("tcp", listener.peer_set());
    introspection.publish(&node, "admin").unwrap();
    let addr = format!("tcp://{}", listener.local_addr());

    // A connection that holds a reference, so that the dump has a table to show.
    let other = tcp::connect(&Node::new(), listener.local_addr(), Config::new())
        .await
        .unwrap();
    let _shop: ShopClient = other.lookup("shop").await.unwrap();

    let out = tether(&["dump", &addr, "--credential", "root:s3cret"]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains(&format!("node {}", node.id())), "{text}");
    assert!(
        text.contains("published: shop, tether.introspect, vault"),
        "{text}"
    );
    assert!(text.contains("connections: 2"), "{text}");
    assert!(
        text.contains("root"),
        "the dumping connection shows its principal: {text}"
    );

    let out = tether(&["dump", &addr]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("access denied"), "{}", stderr(&out));
    let out = tether(&["dump", &addr, "--credential", "root:guess"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("wrong secret") || stderr(&out).contains("disconnected"),
        "{}",
        stderr(&out)
    );
    other.close().await;
    listener.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_relay_the_command_runs_and_calls() {
    // `tether relay` as a process; a node registers through it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["relay", "--listen", "127.0.0.1:0", "--until-stdin-closes"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout_pipe = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout_pipe).read_line(&mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(30), line)
        .await
        .expect("the relay printed its address")
        .unwrap();
    let relay_addr = line.trim().strip_prefix("relay tcp ").unwrap().to_string();

    let node = shop_node();
    let registration = relay::serve_through(&node, relay_addr.as_str(), None, Config::new())
        .await
        .unwrap();
    let address = format!("relay://{relay_addr}/{}", registration.server_id());
    let out = tether(&["call", &address, "shop", "add", "[20, 22]"]).await;
    assert_eq!(stdout(&out).trim(), "42", "{}", stderr(&out));
    let out = tether(&["inspect", &address]).await;
    assert!(stdout(&out).contains("shop: Shop"), "{}", stdout(&out));
    let out = tether(&[
        "call",
        &format!("relay://{relay_addr}/00000000000000aa"),
        "shop",
        "add",
        "[1, 1]",
    ])
    .await;
    assert!(
        stderr(&out).contains("no server 00000000000000aa"),
        "{}",
        stderr(&out)
    );

    // Closing its standard input stops the relay.
    drop(child.stdin.take());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap());
    let status = tokio::time::timeout(Duration::from_secs(30), status)
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_with_the_servers_certificate() {
    let node = shop_node();
    let dev = quic::Dev::localhost().unwrap();
    let listener = dev
        .serve(&node, "127.0.0.1:0", Config::new())
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("tether-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("cert.der");
    std::fs::write(&cert, dev.certificate_der()).unwrap();
    let addr = format!("quic://{}", listener.local_addr());
    let out = tether(&[
        "call",
        &addr,
        "shop",
        "add",
        "[1, 2]",
        "--cert",
        cert.to_str().unwrap(),
    ])
    .await;
    assert_eq!(stdout(&out).trim(), "3", "{}", stderr(&out));
    let out = tether(&["call", &addr, "shop", "add", "[1, 2]"]).await;
    assert!(stderr(&out).contains("needs --cert"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
    listener.close().await;
}
