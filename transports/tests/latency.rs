//! The memory carrier with injected latency, on tokio's paused clock: what
//! round trips cost, measured in virtual time (deterministic, not wall
//! clock). The baseline that promise pipelining improves on
//! (`pipelining.rs`: the same three dependent calls in one round trip).

#![allow(missing_docs, unreachable_pub, clippy::unwrap_used)]

use std::time::Duration;

use tether::Node;
use tether::transports::{Config, memory};
use tokio::time::Instant;

#[tether::interface]
pub trait Chain {
    async fn next(&self, n: u64) -> u64;
}

struct Step;

impl Chain for Step {
    async fn next(&self, n: u64) -> u64 {
        n + 1
    }
}

const LATENCY: Duration = Duration::from_millis(20);

async fn linked() -> (
    tether::transports::Peer,
    tether::transports::Peer,
    ChainClient,
) {
    let (client, server) = (Node::new(), Node::new());
    let step = server
        .expose(Step)
        .with_view("v", ChainInterface::view())
        .unwrap();
    server.publish("chain", step.view("v").unwrap());
    let (to_server, to_client) =
        memory::pair_with_latency(&client, &server, Config::new(), Config::new(), LATENCY);
    to_server.opened().await.unwrap();
    let chain: ChainClient = to_server.lookup("chain").await.unwrap();
    (to_server, to_client, chain)
}

#[tokio::test(start_paused = true)]
async fn a_call_costs_a_round_trip_and_dependent_calls_one_each() {
    let (to_server, _to_client, chain) = linked().await;

    let start = Instant::now();
    assert_eq!(chain.next(1).await.unwrap(), 2);
    assert_eq!(start.elapsed(), 2 * LATENCY, "one round trip");

    // Three calls, each needing the one before: three round trips.
    let start = Instant::now();
    let a = chain.next(0).await.unwrap();
    let b = chain.next(a).await.unwrap();
    let c = chain.next(b).await.unwrap();
    assert_eq!(c, 3);
    assert_eq!(
        start.elapsed(),
        6 * LATENCY,
        "three round trips without pipelining"
    );

    // Independent calls share a round trip: the link delays, it does not
    // serialize.
    let start = Instant::now();
    let all = futures_util::future::join_all((0..10).map(|n| chain.next(n))).await;
    assert!(all.into_iter().all(|r| r.is_ok()));
    assert_eq!(start.elapsed(), 2 * LATENCY, "ten calls in flight at once");
    to_server.close().await;
}
