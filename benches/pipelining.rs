//! Promise pipelining: a chain of three dependent calls (open a table, get
//! a row of it, modify the row), awaited call by call and pipelined, over
//! the memory carrier with 20 ms of injected latency each way (a slow
//! network), over TCP on loopback, and on one node. Figures are printed as
//! a table, in round trips of the link (the time of one plain call), all
//! from one run.
//!
//! `cargo bench -p tether-benches --bench pipelining` (add `-- --quick` for
//! a short run).

#![allow(missing_docs, clippy::unwrap_used)] // a benchmark: any failure should stop it loudly

use std::time::{Duration, Instant};

use tether::transports::{Config, memory, tcp};
use tether::{Client, Node};

#[tether::interface]
pub trait Db {
    async fn open(&self, name: String) -> TableClient;
    async fn ping(&self) -> u64;
}

#[tether::interface]
pub trait Table {
    async fn row(&self, n: u64) -> RowClient;
}

#[tether::interface]
pub trait Row {
    async fn modify(&self, v: u64) -> u64;
}

struct Store(Node);
struct Rows(Node);
struct Cell(u64);

impl Db for Store {
    async fn open(&self, _name: String) -> TableClient {
        let rows = Rows(self.0.clone());
        self.0
            .expose(rows)
            .with_view("v", TableInterface::view())
            .unwrap()
            .client("v")
            .unwrap()
    }
    async fn ping(&self) -> u64 {
        1
    }
}
impl Table for Rows {
    async fn row(&self, n: u64) -> RowClient {
        self.0
            .expose(Cell(n))
            .with_view("v", RowInterface::view())
            .unwrap()
            .client("v")
            .unwrap()
    }
}
impl Row for Cell {
    async fn modify(&self, v: u64) -> u64 {
        self.0 + v
    }
}

fn db_on(node: &Node) -> DbClient {
    node.expose(Store(node.clone()))
        .with_view("v", DbInterface::view())
        .unwrap()
        .client("v")
        .unwrap()
}

/// The median of `runs` timings of `f`.
async fn median<F: std::future::Future<Output = ()>>(
    runs: usize,
    mut f: impl FnMut() -> F,
) -> Duration {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f().await;
        times.push(t.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

struct Row3 {
    link: &'static str,
    round_trip: Duration,
    awaited: Duration,
    pipelined: Duration,
}

async fn measure(link: &'static str, db: DbClient, runs: usize) -> Row3 {
    for _ in 0..runs.min(20) {
        db.ping().await.unwrap();
    }
    let round_trip = median(runs, || async {
        db.ping().await.unwrap();
    })
    .await;
    let awaited = median(runs, || async {
        let table = db.open("t".into()).await.unwrap();
        let row = table.row(4).await.unwrap();
        assert_eq!(row.modify(1).await.unwrap(), 5);
    })
    .await;
    let pipelined = median(runs, || async {
        let v = db
            .open("t".into())
            .pipeline()
            .row(4)
            .pipeline()
            .modify(1)
            .await;
        assert_eq!(v.unwrap(), 5);
    })
    .await;
    Row3 {
        link,
        round_trip,
        awaited,
        pipelined,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = runtime.block_on(async {
        let mut rows = Vec::new();

        let (client, server) = (Node::new(), Node::new());
        server.publish("db", db_on(&server).reference().clone());
        let latency = Duration::from_millis(20);
        let (to_server, _to_client) =
            memory::pair_with_latency(&client, &server, Config::new(), Config::new(), latency);
        let db: DbClient = to_server.lookup("db").await.unwrap();
        rows.push(measure("memory, 20 ms each way", db, if quick { 3 } else { 15 }).await);
        to_server.close().await;

        let (client, server) = (Node::new(), Node::new());
        server.publish("db", db_on(&server).reference().clone());
        let listener = tcp::serve(&server, "127.0.0.1:0", Config::new())
            .await
            .unwrap();
        let peer = tcp::connect(&client, listener.local_addr(), Config::new())
            .await
            .unwrap();
        let db: DbClient = peer.lookup("db").await.unwrap();
        rows.push(measure("TCP, loopback", db, if quick { 200 } else { 5000 }).await);
        peer.close().await;
        listener.close().await;

        let node = Node::new();
        rows.push(
            measure(
                "one node (no link)",
                db_on(&node),
                if quick { 200 } else { 5000 },
            )
            .await,
        );
        rows
    });

    println!(
        "| link | one call | 3 dependent calls, awaited | pipelined | awaited, in calls | pipelined, in calls |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let calls = |d: Duration| d.as_secs_f64() / r.round_trip.as_secs_f64();
        println!(
            "| {} | {:.1?} | {:.1?} | {:.1?} | {:.2} | {:.2} |",
            r.link,
            r.round_trip,
            r.awaited,
            r.pipelined,
            calls(r.awaited),
            calls(r.pipelined)
        );
    }
}
