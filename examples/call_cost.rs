//! Makes N local calls in one configuration, so that their cost can be
//! counted in instructions, which, unlike time, repeat exactly from run to
//! run. `benches/instructions.sh` runs it under callgrind for every
//! configuration and prints instructions per call.
//!
//! `cargo run --release --example call_cost -- <config> <calls>`
//!
//! Configurations: `direct`, `tower` (a `BoxCloneService` the caller owns),
//! `tower_shared` (the same, cloned per call, as a service shared between
//! tasks must be), `sync`, `pass1`, `pass5`, `logging` (no subscriber),
//! `mutex` (uncontended), `access` (allowed), `future`, `multicast3`.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use tether::abstractions::{FutureCall, Multicast, Policy};
use tether::filters::access::{AccessLayer, Who};
use tether::filters::{LoggingLayer, MutexLayer};
use tether::{Client, Node};
use tower::util::BoxCloneService;
use tower::{Service, ServiceExt};

/// The method measured.
#[tether::interface]
pub trait Calc {
    /// Adds.
    async fn add(&self, a: u64, b: u64) -> u64;
}

struct Adder;

impl Calc for Adder {
    async fn add(&self, a: u64, b: u64) -> u64 {
        a.wrapping_add(b)
    }
}

#[path = "../benches/support/pass.rs"]
mod pass;
use pass::PassLayer;

fn client<L>(node: &Node, view: tether::View<CalcInterface, L>) -> CalcClient
where
    L: tether::ext::Filters<CalcInterface, tether::Object<Adder>>,
{
    node.expose(Adder)
        .with_view("v", view)
        .unwrap()
        .client("v")
        .unwrap()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let config = args.next().unwrap_or_else(|| "sync".into());
    let calls: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let node = Node::new();
    let object = Arc::new(Adder);
    let mut tower_svc = BoxCloneService::new(tower::service_fn({
        let object = object.clone();
        move |(a, b): (u64, u64)| {
            let object = object.clone();
            async move { Ok::<_, Infallible>(object.add(a, b).await) }
        }
    }));
    let stub = match config.as_str() {
        "direct" | "tower" | "tower_shared" => None,
        "sync" => Some(client(&node, CalcInterface::view())),
        "pass1" => Some(client(&node, CalcInterface::view().layer(PassLayer))),
        "pass5" => Some(client(
            &node,
            CalcInterface::view()
                .layer(PassLayer)
                .layer(PassLayer)
                .layer(PassLayer)
                .layer(PassLayer)
                .layer(PassLayer),
        )),
        "logging" => Some(client(
            &node,
            CalcInterface::view().layer(LoggingLayer::new()),
        )),
        "mutex" => Some(client(
            &node,
            CalcInterface::view().layer(MutexLayer::exclusive()),
        )),
        "access" => Some(client(
            &node,
            CalcInterface::view().layer(AccessLayer::deny_all().allow(Who::Anyone)),
        )),
        "future" => Some(client(&node, CalcInterface::view().abstraction(FutureCall))),
        "multicast3" => {
            let members = (0..3).map(|_| client(&node, CalcInterface::view()).reference().clone());
            Some(
                Multicast::new(members, Policy::All)
                    .unwrap()
                    .client()
                    .unwrap(),
            )
        }
        other => {
            eprintln!("unknown configuration {other:?}");
            std::process::exit(2);
        }
    };
    let sum = rt.block_on(async {
        let mut sum = 0_u64;
        for i in 0..calls {
            let r = match (&stub, config.as_str()) {
                (Some(stub), _) => stub.add(black_box(i), 2).await.unwrap(),
                (None, "direct") => object.add(black_box(i), 2).await,
                (None, "tower_shared") => {
                    tower_svc.clone().oneshot((black_box(i), 2)).await.unwrap()
                }
                (None, _) => {
                    let svc = tower_svc.ready().await.unwrap();
                    svc.call((black_box(i), 2)).await.unwrap()
                }
            };
            sum = sum.wrapping_add(r);
        }
        sum
    });
    println!("{config}: {calls} calls, checksum {sum}");
}
